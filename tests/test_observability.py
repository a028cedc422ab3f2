"""Health probes, request ids and the per-request log line."""
import json
import logging

import pytest

from app import create_app
from logs import _HANDLER_MARK
from security.policy import POLICY, PUBLIC, Rule
from tests.conftest import base_config, error_of


def test_healthz(anon):
    response = anon.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_when_database_answers(anon):
    response = anon.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok"}}


def test_readyz_names_an_unreachable_database(oidc_provider):
    # A real MongoDB client pointed at a port where nothing listens.
    app = create_app(base_config(
        oidc_provider, MONGO_URI="mongodb://127.0.0.1:9/crm_test", MONGO_TIMEOUT_MS=300
    ))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = error_of(response)
    assert body["error"] == "Not ready: database unavailable"
    assert body["checks"]["database"].startswith("down:")
    assert app.test_client().get("/healthz").status_code == 200


def _our_handler():
    return next(h for h in logging.getLogger().handlers if getattr(h, _HANDLER_MARK, False))


def _access_records(caplog):
    return [r for r in caplog.records if r.name == "crm.access"]


def test_one_json_access_line_per_request(client, staff_user, caplog):
    with caplog.at_level(logging.INFO, logger="crm.access"):
        response = client.post("/api/customers", json={"name": "A", "email": "a@example.com"})
    records = _access_records(caplog)
    assert len(records) == 1
    line = json.loads(_our_handler().format(records[0]))
    assert line["method"] == "POST" and line["path"] == "/api/customers"
    assert line["status"] == 201
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["user_id"] == str(staff_user.pk)
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert line["level"] == "INFO" and line["logger"] == "crm.access" and "time" in line


def test_anonymous_request_logs_no_user(anon, caplog):
    with caplog.at_level(logging.INFO, logger="crm.access"):
        anon.get("/api/customers")
    line = json.loads(_our_handler().format(_access_records(caplog)[0]))
    assert line["status"] == 401 and line["user_id"] is None


@pytest.mark.parametrize(
    "supplied, kept",
    [("abc-123", True), ("req.1:2_3", True), ("x" * 128, True), ("x" * 129, False),
     ("bad id", False), ("<script>", False), ("", False)],
)
def test_request_id_is_taken_from_header_when_safe(anon, supplied, kept):
    response = anon.get("/api/nope", headers={"X-Request-ID": supplied})
    echoed = response.headers["X-Request-ID"]
    assert (echoed == supplied) is kept
    if not kept:
        assert len(echoed) == 32
    assert response.get_json()["requestId"] == echoed


def test_request_ids_differ_between_requests(anon):
    first = anon.get("/healthz").headers["X-Request-ID"]
    second = anon.get("/healthz").headers["X-Request-ID"]
    assert first != second


def test_every_error_body_carries_the_request_id(client):
    for response in (
        client.get("/api/nope"),
        client.put("/api/customers"),
        client.post("/api/customers", json={}),
        client.get("/api/customers/64b7f0000000000000000000"),
    ):
        assert response.status_code >= 400
        assert response.get_json()["requestId"] == response.headers["X-Request-ID"]


def test_log_lines_inside_a_request_carry_its_id(make_app, caplog, monkeypatch):
    app = make_app()
    monkeypatch.setitem(POLICY, "log_something", Rule(PUBLIC))

    @app.get("/api/log-something")
    def log_something():
        logging.getLogger("crm.test").warning("inside")
        return "ok"

    with caplog.at_level(logging.WARNING):
        response = app.test_client().get("/api/log-something", headers={"X-Request-ID": "trace-me"})
    inside = next(r for r in caplog.records if r.getMessage() == "inside")
    assert json.loads(_our_handler().format(inside))["request_id"] == "trace-me"
    assert response.headers["X-Request-ID"] == "trace-me"


def test_text_log_format(make_app, caplog):
    app = make_app(LOG_FORMAT="text")
    with caplog.at_level(logging.INFO, logger="crm.access"):
        response = app.test_client().get("/healthz")
    text = _our_handler().format(_access_records(caplog)[0])
    assert f"[{response.headers['X-Request-ID']}] GET /healthz 200" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
