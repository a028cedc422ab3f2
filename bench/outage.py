"""How long a database outage costs: from its loss to the first 503, from its return to the first 200.

gunicorn (two workers, default ``MONGO_TIMEOUT_MS``) on the MongoDB stand-in (SQLite file, so data
survives the restart); a client polls ``GET /api/customers`` every 50 ms; the stand-in is killed -9,
then started again on the same port.
"""
import statistics
import tempfile
import time

import requests

from tests.processes import Gunicorn, MongoStandIn, base_env, wait_until

POLL_S = 0.05


def _first(base, status, limit_s):
    """Seconds until a poll answers ``status``, and the duration of that request."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        request_started = time.monotonic()
        try:
            code = requests.get(f"{base}/api/customers", timeout=60).status_code
        except requests.RequestException:
            code = None
        if code == status:
            return time.monotonic() - started, time.monotonic() - request_started
        time.sleep(POLL_S)
    raise TimeoutError(f"no {status} within {limit_s} s")


def measure(rounds=3, timeout_ms=3000):
    """``{"to_503": [...], "to_200": [...], "timeout_ms": ...}`` over ``rounds`` outages."""
    with tempfile.TemporaryDirectory() as tmp:
        database = MongoStandIn(tmp, data=f"{tmp}/crm.sqlite", engine="sqlite").start()
        env = base_env(MONGO_URI=database.uri("crm_bench_outage"), MONGO_TIMEOUT_MS=timeout_ms,
                       APP_ENV="development", LOGIN_DISABLED="true", LOG_LEVEL="ERROR")
        server = Gunicorn(env, tmp, workers=2).start()
        to_503, to_200 = [], []
        try:
            wait_until(lambda: requests.get(f"{server.base}/api/customers").status_code == 200, 30)
            for _ in range(rounds):
                database.kill()
                to_503.append(_first(server.base, 503, 60)[0])
                database.start()
                to_200.append(_first(server.base, 200, 60)[0])
        finally:
            server.stop()
            database.stop()
    return {"to_503": to_503, "to_200": to_200, "timeout_ms": timeout_ms}


def report(result):
    """Print the figures against their goals."""
    goal_503 = result["timeout_ms"] / 1000 + 1
    down, back = statistics.median(result["to_503"]), statistics.median(result["to_200"])
    print(f"database lost -> first 503: median {down:.2f}s (all: {', '.join(f'{s:.2f}' for s in result['to_503'])})"
          f" | goal <= MONGO_TIMEOUT_MS + 1 s = {goal_503:.1f}s | ratio to goal {down / goal_503:.2f}")
    print(f"database back -> first 200: median {back:.2f}s (all: {', '.join(f'{s:.2f}' for s in result['to_200'])})"
          f" | goal <= 5 s | ratio to goal {back / 5:.2f}")
