"""The README's run command really serves the API on the embedded database."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served():
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "MONGODB_URI")},
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LOGIN_DISABLED": "true",
    }
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "serve.sh")], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/api/auth/status", timeout=1)
            break
        except requests.ConnectionError:
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
