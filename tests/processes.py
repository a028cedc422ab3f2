"""Real processes for end-to-end tests: the MongoDB stand-in, gunicorn, Celery, the flask CLI.

Each process runs in its own session (so a kill reaches its children) and writes its output to a
file the test can read afterwards.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port():
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    """True when something accepts connections on ``port``."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Poll ``predicate`` until it returns a truthy value; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def base_env(**overrides):
    """The environment of the test run without database settings, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "MONGODB_URI")}
    env.update({"LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update({k: str(v) for k, v in overrides.items()})
    return env


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name, args, env, log_dir):
        self.name, self.args, self.env = name, args, env
        self.log_path = Path(log_dir) / f"{name}.log"
        self.popen = None

    def start(self):
        """Start it (appending to its log)."""
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def running(self):
        """True while the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the whole process group and wait for it."""
        if self.running():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)

    def kill(self):
        """``kill -9`` the whole process group: no clean-up of any kind."""
        self.stop(signal.SIGKILL)

    def output(self):
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class MongoStandIn(Process):
    """``scripts/mongo-standin.sh`` on a port of its own; SQLite data survives a restart."""

    def __init__(self, log_dir, data=None, engine="memory", port=None):
        self.port = port or free_port()
        args = [str(ROOT / "scripts" / "mongo-standin.sh"), "--port", str(self.port), "--engine", engine]
        if data:
            args += ["--data", str(data)]
        super().__init__(f"mongo-{self.port}", args, os.environ.copy(), log_dir)

    def start(self):
        """Start and wait until it accepts connections."""
        super().start()
        wait_until(lambda: port_open(self.port) or not self.running(), 60, what="MongoDB stand-in")
        if not self.running():
            raise RuntimeError("MongoDB stand-in exited:\n" + self.output())
        return self

    def uri(self, database):
        """A MongoDB URI for ``database`` on this server."""
        return f"mongodb://127.0.0.1:{self.port}/{database}?directConnection=true"


class Gunicorn(Process):
    """The API as production serves it: ``gunicorn wsgi:app`` (sync workers, or threads)."""

    def __init__(self, env, log_dir, workers=2, port=None, host="127.0.0.1", threads=1):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [str(VENV_BIN / "gunicorn"), "wsgi:app", "--bind", f"{host}:{self.port}",
                "--workers", str(workers), "--threads", str(threads), "--no-control-socket",
                "--graceful-timeout", "5"]
        super().__init__(f"gunicorn-{self.port}", args, env, log_dir)

    def start(self):
        """Start and wait until ``/healthz`` answers."""
        super().start()

        def up():
            if not self.running():
                raise RuntimeError("gunicorn exited:\n" + self.output())
            try:
                return requests.get(f"{self.base}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 60, interval=0.2, what="gunicorn")
        return self


def flask_command(*args, env, timeout=300):
    """Run ``flask <args>`` as an operator would (``.flaskenv`` picks the app); returns the result."""
    return subprocess.run([str(VENV_BIN / "flask"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
