"""Health probes, request ids and the per-request log line."""
import json
import logging

import pytest

from app import create_app
from logs import _HANDLER_MARK
from security.policy import POLICY, PUBLIC, Rule
from tests.checks import error_of
from tests.factories import base_config


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


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_email_addresses_are_masked_in_every_log_line(make_app, caplog, log_format):
    make_app(LOG_FORMAT=log_format)
    with caplog.at_level(logging.WARNING):
        try:
            raise RuntimeError("smtp refused grace.hopper@navy.example.mil")
        except RuntimeError:
            logging.getLogger("services.vendors").exception("vendor said no to %s", "ada@example.com")
    line = _our_handler().format(caplog.records[-1])
    assert "ada@example.com" not in line and "grace.hopper@navy.example.mil" not in line
    assert "a***@example.com" in line and "g***@navy.example.mil" in line


def test_customer_emails_never_reach_the_logs(client, caplog):
    emails = ["ada@example.com", "bo.b@shop.example"]
    with caplog.at_level(logging.DEBUG):
        for email in emails:
            client.post("/api/customers", json={"name": "X", "email": email})
        client.post("/api/customers", json={"name": "X", "email": emails[0]})  # 409
        client.get(f"/api/customers?email={emails[1]}")
        client.post("/api/customers", json={"name": "X", "email": "not-an-email"})
    lines = [_our_handler().format(record) for record in caplog.records]
    assert lines and not [line for line in lines if any(email in line for email in emails)]


def test_customer_searches_are_audited_without_the_addresses(client, staff_user):
    from models import AuditEvent

    client.get("/api/customers")  # a plain listing is not a search
    assert AuditEvent.objects(action="customer.search").count() == 0
    client.get("/api/customers?email=ada@example.com")
    client.get("/api/customers?q=Lovelace")
    events = list(AuditEvent.objects(action="customer.search").order_by("at"))
    assert [e.details for e in events] == [{"email": "a***@example.com"}, {"q": "Lovelace"}]
    assert {e.actor_email for e in events} == {staff_user.email} and all(e.request_id for e in events)


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize("address, shown", [
    ("user@[192.168.0.1]", "u***@[192.168.0.1]"),
    ('"quoted"@x', "***@x"),
    ('"with space"@shop.example', "***@shop.example"),
    ("ada@bücher.de", "a***@bücher.de"),
    ("ädä@xn--bcher-kva.example", "ä***@xn--bcher-kva.example"),
    ("a.b+tag@sub.example.co.uk", "a***@sub.example.co.uk"),
])
def test_every_address_the_api_accepts_is_masked_and_a_json_line_stays_json(make_app, caplog, log_format,
                                                                           address, shown):
    make_app(LOG_FORMAT=log_format)
    with caplog.at_level(logging.WARNING):
        logging.getLogger("services.vendors").warning("vendor refused %s", address)
    line = _our_handler().format(caplog.records[-1])
    local = address.rsplit("@", 1)[0]
    assert local not in line and local.strip('"') not in line
    assert shown in line
    if log_format == "json":
        assert json.loads(line)["message"] == f"vendor refused {shown}"
