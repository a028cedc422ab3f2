"""The README's run command really serves the API on the embedded database."""
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.processes import ROOT, Gunicorn, Process, base_env, free_port


@pytest.fixture
def served():
    port = free_port()
    env = base_env(PORT=port, HOST="127.0.0.1", LOGIN_DISABLED="true")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "serve.sh")], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/api/auth/status", timeout=5)
            break
        except requests.RequestException:
            if process.poll() is not None:
                pytest.fail(process.stdout.read().decode())
            time.sleep(0.2)
    else:
        pytest.fail("server did not start within 60 s")
    yield base
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=20)[0].decode()
    assert "NOT persisted" in output


def test_run_command_serves_the_api_on_one_shared_embedded_store(served):
    assert requests.get(f"{served}/api/auth/status").json() == {"isAuthenticated": False}
    created = requests.post(f"{served}/api/customers", json={"name": "A", "email": "a@example.com"})
    assert created.status_code == 201
    for _ in range(10):  # several requests, served by the worker's threads, see the same data
        listing = requests.get(f"{served}/api/customers").json()
        assert listing["total"] == 1


def test_rate_limit_holds_across_two_gunicorn_workers_sharing_redis(redis_url, tmp_path):
    env = base_env(APP_ENV="testing", RATELIMIT_STORAGE_URI=redis_url, RATELIMIT_LOGIN="5 per minute",
                   RATELIMIT_KEY_PREFIX=f"crm-test-{uuid.uuid4().hex}")
    server = Gunicorn(env, tmp_path, workers=2).start()
    base = server.base
    try:
        # Occupy one sync worker with a half-sent request: it blocks reading it, so every request
        # below is answered by the other worker; then finish it, so both workers have counted.
        port = int(base.rsplit(":", 1)[1])
        held = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.sendall(b"GET /api/auth/google HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(0.5)
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(
                lambda _: requests.get(f"{base}/api/auth/google", allow_redirects=False, timeout=10).status_code,
                range(23),
            ))
        held.sendall(b"Connection: close\r\n\r\n")
        statuses.append(int(held.recv(4096).split(b" ", 2)[1]))
        held.close()
    finally:
        server.stop()
    output = server.output()
    assert statuses.count(429) == 19, statuses  # 5 allowed in total, not 5 per worker
    served_by = {
        line["pid"] for line in map(_json_or_none, output.splitlines())
        if line and line.get("logger") == "crm.access" and line.get("path") == "/api/auth/google"
    }
    assert len(served_by) == 2, "both workers must have answered for this test to mean anything"


def _json_or_none(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


@pytest.mark.parametrize("headers, path, status", [
    ({}, "/api/customers?q=" + "x" * 5000, 414),
    ({f"X-Filler-{i}": "y" for i in range(120)}, "/api/customers", 431),
    ({"X-Big": "z" * 9000}, "/api/customers", 431),
])
def test_requests_gunicorn_refuses_get_the_json_error_shape(served, headers, path, status):
    response = requests.get(f"{served}{path}", headers=headers)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {"error"} and response.json()["error"]


@pytest.mark.parametrize("host, app_env, warned", [
    ("0.0.0.0", "development", True), ("127.0.0.1", "development", False), ("0.0.0.0", "production", False),
])
def test_development_server_beyond_loopback_warns_loudly(tmp_path, host, app_env, warned):
    env = base_env(APP_ENV=app_env, SESSION_SECRET="Zq8vN3kP0wXe7RtY2uIo5pAs9dFg4hJl-x",
                   FRONTEND_URL="https://crm.example.com")
    server = Gunicorn(env, tmp_path, workers=1, host=host).start()
    server.stop()
    assert ("DEVELOPMENT SERVER LISTENING BEYOND THIS MACHINE" in server.output()) is warned


@pytest.mark.parametrize("host, app_env, starts", [
    ("0.0.0.0", None, False), ("127.0.0.1", None, True), ("0.0.0.0", "development", True),
])
def test_a_server_beyond_loopback_without_app_env_refuses_to_start(tmp_path, host, app_env, starts):
    """Development is asked for, not fallen into: no APP_ENV on a public address is refused."""
    env = base_env(GOOGLE_CLIENT_ID="", GOOGLE_CLIENT_SECRET="", SCHEDULER_ENABLED="false")
    env.pop("APP_ENV", None)
    env.pop("FLASK_ENV", None)
    if app_env:
        env["APP_ENV"] = app_env
    server = Gunicorn(env, tmp_path, workers=1, host=host)
    try:
        if starts:
            server.start()
        else:
            Process.start(server)  # no wait for /healthz: it must exit, refusing
            assert server.popen.wait(timeout=60) != 0
            assert "APP_ENV is not set and gunicorn listens beyond loopback" in server.output()
    finally:
        server.stop()


def _children(pid):
    """The process ids whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(found)


@pytest.mark.own_processes
def test_one_development_key_serves_every_gunicorn_worker_and_survives_a_restart(tmp_path):
    """The master mints the key and prints it once; both workers, and a worker restarted later,
    accept it (before, each worker printed its own: one key answered 401 401 200 200 401 200)."""
    import re

    env = base_env(APP_ENV="development", GOOGLE_CLIENT_ID="", GOOGLE_CLIENT_SECRET="", SCHEDULER_ENABLED="false")
    server = Gunicorn(env, tmp_path, workers=2).start()
    try:
        keys = re.findall(r"development admin API key[^:]*: (crm_\S+)", server.output())
        assert len(keys) == 1, server.output()
        headers = {"Authorization": f"Bearer {keys[0]}"}

        def answers():  # fresh connections: sync workers take turns
            return [requests.get(f"{server.base}/api/auth/me", headers=headers, timeout=10).status_code
                    for _ in range(20)]

        assert answers() == [200] * 20
        workers = _children(server.popen.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # the master starts another worker
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            current = _children(server.popen.pid)
            if len(current) == 2 and workers[0] not in current:
                break
            time.sleep(0.2)
        time.sleep(1)
        assert answers() == [200] * 20
        assert len(re.findall(r"development admin API key", server.output())) == 1
    finally:
        server.stop()
