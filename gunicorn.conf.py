"""gunicorn settings, read from this directory by every ``gunicorn wsgi:app`` (serve.sh, tests).

Requests gunicorn refuses before the app sees them (a request line over ``limit_request_line``, too
many or too large headers, a malformed request) get the API's JSON error shape instead of gunicorn's
HTML page. gunicorn formats all of them in one function, ``gunicorn.util.write_error``; it is
replaced here, in the server's own configuration, rather than forked.
"""
import json
import os
import tempfile

from gunicorn import util

import config as app_config

control_socket_disable = True  # gunicorn 27 would otherwise create one under ~/.gunicorn


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's error response, as ``{"error": ...}``."""
    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = write_json_error


def on_starting(server):
    """In the master, before any worker exists: a server listening beyond loopback with no APP_ENV
    refuses to start (development must be chosen, not fallen into); a development server without
    Google sign-in mints its one admin key here and prints it once; workers accept it by its hash
    (security/api_keys.py)."""
    settings = app_config.from_env()
    _share_metrics(server, settings)
    exposed = [address for address in server.cfg.bind if not _loopback(address)]
    if exposed and not settings["APP_ENV_CHOSEN"]:
        raise SystemExit(app_config.UNCHOSEN_ENV.format(why="gunicorn listens beyond loopback on "
                                                             + ", ".join(exposed)))
    if settings["APP_ENV"] != "development" or (settings["GOOGLE_CLIENT_ID"] and settings["GOOGLE_CLIENT_SECRET"]):
        return
    from models.api_key import hash_key
    from security.api_keys import DEV_KEY_HASH_ENV, mint_dev_admin_key

    port = server.cfg.bind[0].rsplit(":", 1)[-1] if server.cfg.bind else settings["PORT"]
    os.environ[DEV_KEY_HASH_ENV] = hash_key(mint_dev_admin_key(server.log.warning, port))


def _share_metrics(server, settings):
    """Metrics in multiprocess mode: every worker counts into one directory that /metrics adds up. Set
    here, in the master, before any worker (or prometheus-client) exists: a fresh directory when
    ``METRICS_TOKEN`` is set and ``PROMETHEUS_MULTIPROC_DIR`` is not."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory and settings.get("METRICS_TOKEN"):
        directory = tempfile.mkdtemp(prefix="crm-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        server.log.info("metrics: each worker counts into %s", directory)
    if directory:
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    """A worker that exited: its live gauges go (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def when_ready(server):
    """Warn loudly when a development server (dev admin key, relaxed checks) listens beyond loopback."""
    if app_config.is_production(app_config.from_env()):
        return
    exposed = [address for address in server.cfg.bind if not _loopback(address)]
    if exposed:
        server.log.warning(
            "DEVELOPMENT SERVER LISTENING BEYOND THIS MACHINE on %s: APP_ENV=%s relaxes security "
            "(a development admin key, LOGIN_DISABLED allowed). Bind 127.0.0.1 (HOST=127.0.0.1) "
            "or set APP_ENV=production.", ", ".join(exposed), os.environ.get("APP_ENV", "development"))


def _loopback(address):
    if address.startswith("unix:") or address.startswith("fd://"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
