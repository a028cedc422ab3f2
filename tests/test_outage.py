"""A database outage costs seconds: 503 with Retry-After while it lasts, by itself back after.

Real processes: gunicorn (two sync workers) on the MongoDB stand-in, which the tests stop and start.
"""
import time

import pymongo
import pytest
import requests

from tests.processes import Gunicorn, MongoStandIn, base_env, wait_until

TIMEOUT_MS = 1000

pytestmark = pytest.mark.own_processes


def server_env(uri, **overrides):
    """A development server on ``uri`` with sign-in switched off (these tests are about the database)."""
    return base_env(MONGO_URI=uri, MONGO_TIMEOUT_MS=TIMEOUT_MS, APP_ENV="development",
                    LOGIN_DISABLED="true", SCHEDULER_INTERVAL_S="0.3", **overrides)


def timed(method, url, **kwargs):
    """``(response, seconds)``."""
    started = time.monotonic()
    response = requests.request(method, url, timeout=30, **kwargs)
    return response, time.monotonic() - started


def assert_unavailable(response):
    """The API's error shape, 503, and when to come back."""
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"] == "Database unavailable, try again shortly"


def test_outage_answers_503_within_the_timeout_and_recovers_by_itself(mongo_standin, tmp_path):
    database = mongo_standin(engine="sqlite", data=tmp_path / "crm.sqlite")
    server = Gunicorn(server_env(database.uri("crm_outage_test")), tmp_path, workers=2).start()
    try:
        assert requests.post(f"{server.base}/api/customers",
                             json={"name": "Ada", "email": "ada@example.com"}).status_code == 201
        database.kill()

        # a session cookie makes Flask-Session read the session store (the app database) before
        # the view runs: that failure is a 503 too, not a 500
        cookie = {"session": "0" * 43}
        for method, path, body, cookies in [
                ("GET", "/api/customers", None, None),
                ("POST", "/api/customers", {"name": "Bo", "email": "bo@example.com"}, None),
                ("GET", "/api/customers/000000000000000000000000", None, None),
                ("GET", "/api/customers", None, cookie)]:
            response, seconds = timed(method, f"{server.base}{path}", json=body, cookies=cookies)
            assert_unavailable(response)
            assert seconds <= TIMEOUT_MS / 1000 + 1, f"{method} {path} took {seconds:.2f} s"
        ready, seconds = timed("GET", f"{server.base}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("down:")
        assert seconds <= TIMEOUT_MS / 1000 + 1
        assert requests.get(f"{server.base}/healthz").status_code == 200
        time.sleep(1.5)  # several scheduler rounds fail meanwhile

        database.start()
        returned = time.monotonic()
        wait_until(lambda: requests.get(f"{server.base}/api/customers").status_code == 200, 5,
                   interval=0.1, what="first 200 after the database returned")
        print(f"first 200 {time.monotonic() - returned:.2f} s after the database returned")
        listing = requests.get(f"{server.base}/api/customers").json()
        assert [c["email"] for c in listing["items"]] == ["ada@example.com"]  # kept; nothing half-written
        assert requests.get(f"{server.base}/readyz").status_code == 200
        # each worker's scheduler says once that the database is gone, and once that it is back
        wait_until(lambda: server.output().count("scheduled-campaign sweep: database reachable again")
                   == server.output().count("scheduled-campaign sweep: database unreachable"), 5,
                   what="every scheduler to notice the database is back")
    finally:
        server.stop()
    output = server.output()
    assert "Traceback" not in output
    assert 1 <= output.count("scheduled-campaign sweep: database unreachable") <= 2, output[-3000:]


def test_server_starts_while_the_database_is_down_and_creates_indexes_when_it_returns(
        mongo_standin_ready, tmp_path):
    database = MongoStandIn(tmp_path, engine="memory")  # its port is known, nothing listens yet
    server = Gunicorn(server_env(database.uri("crm_startup_test")), tmp_path, workers=1).start()
    try:
        assert_unavailable(requests.get(f"{server.base}/api/customers", timeout=30))
        assert requests.get(f"{server.base}/readyz", timeout=30).status_code == 503
        database.start()
        wait_until(lambda: requests.get(f"{server.base}/api/customers").status_code == 200, 5,
                   interval=0.1, what="first 200 after the database came up")
        indexes = pymongo.MongoClient(database.uri("crm_startup_test")).crm_startup_test.customers

        def email_index():
            return any(spec.get("unique") and spec["key"] == [("email", 1)]
                       for spec in indexes.index_information().values())

        wait_until(email_index, 15, interval=0.2, what="unique email index")
    finally:
        server.stop()
        database.stop()
    output = server.output()
    assert "Traceback" not in output
    assert output.count("indexes will be created then") == 1  # one line, not one per try
    assert "indexes ensured" in output
