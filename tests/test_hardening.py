"""API keys, CSRF, CORS, rate limits, security headers, NoSQL injection, mass assignment."""
import json
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest

from models import ApiKey, AuditEvent, Customer, Order, User
from models.base import utcnow
from models.roles import ADMIN, MARKETER, VIEWER
from app import start_web
from tests.checks import counts, error_of
from tests.factories import make_user, signed_in


def _in(days):
    return (datetime.now(timezone.utc) + timedelta(days=days)).isoformat()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


# --- API keys ----------------------------------------------------------------------------------------
def test_api_key_lifecycle(app, client, staff_user):
    created = client.post("/api/api-keys", json={"name": "postman", "expiresAt": _in(30)})
    assert created.status_code == 201
    body = created.get_json()
    key = body["key"]
    assert key.startswith("crm_") and body["prefix"] == key[:12]
    assert body["role"] == MARKETER and body["userId"] == str(staff_user.pk)
    assert body["lastUsedAt"] is None and body["revokedAt"] is None

    stored = ApiKey.objects.get()
    assert key not in json.dumps(stored.to_mongo().to_dict(), default=str)  # only the hash is kept

    anon = app.test_client()
    me = anon.get("/api/auth/me", headers=bearer(key))
    assert me.status_code == 200 and me.get_json()["email"] == "staff@example.com"
    assert anon.get("/api/customers", headers={"X-API-Key": key}).status_code == 200
    assert anon.post("/api/customers", headers=bearer(key),
                     json={"name": "Via key", "email": "k@example.com"}).status_code == 201
    assert Customer.objects.get(email="k@example.com").created_by == staff_user.pk

    listing = client.get("/api/api-keys").get_json()
    assert listing["total"] == 1 and "key" not in listing["items"][0]
    assert listing["items"][0]["lastUsedAt"] is not None

    assert client.delete(f"/api/api-keys/{body['_id']}").status_code == 204
    assert anon.get("/api/auth/me", headers=bearer(key)).status_code == 401
    assert client.delete(f"/api/api-keys/{body['_id']}").status_code == 204  # idempotent
    assert client.get("/api/api-keys").get_json()["items"][0]["revokedAt"] is not None


def test_expired_key_is_refused(app, client):
    key = client.post("/api/api-keys", json={"name": "short", "expiresAt": _in(1)}).get_json()["key"]
    ApiKey.objects.update(set__expires_at=utcnow() - timedelta(seconds=1))
    assert app.test_client().get("/api/auth/me", headers=bearer(key)).status_code == 401


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer crm_not-a-real-key"}, {"X-API-Key": "nope"}, {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
])
def test_unknown_keys_are_401(anon, header):
    assert anon.get("/api/customers", headers=header).status_code == 401


def test_key_role_is_capped_by_creator_and_limits_the_caller(app, client, admin_client):
    too_high = client.post("/api/api-keys", json={"name": "x", "role": ADMIN})
    assert too_high.status_code == 403
    assert ApiKey.objects.count() == 0
    read_only = admin_client.post("/api/api-keys", json={"name": "ro", "role": VIEWER}).get_json()
    anon = app.test_client()
    assert anon.get("/api/users", headers=bearer(read_only["key"])).status_code == 403
    assert anon.post("/api/customers", headers=bearer(read_only["key"]),
                     json={"name": "A", "email": "a@example.com"}).status_code == 403
    assert anon.get("/api/customers", headers=bearer(read_only["key"])).status_code == 200


def test_key_loses_rights_when_its_owner_is_demoted(app, admin_client):
    owner = make_user(MARKETER, email="owner@example.com")
    key = signed_in(app, owner).post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    admin_client.patch(f"/api/users/{owner.pk}", json={"role": VIEWER})
    response = app.test_client().post("/api/customers", headers=bearer(key),
                                      json={"name": "A", "email": "a@example.com"})
    assert response.status_code == 403


def test_keys_of_others_are_invisible_and_unrevocable(app, client, admin_client):
    other = make_user(MARKETER, email="other@example.com")
    theirs = signed_in(app, other).post("/api/api-keys", json={"name": "theirs"}).get_json()
    assert client.get("/api/api-keys").get_json()["total"] == 0
    assert client.delete(f"/api/api-keys/{theirs['_id']}").status_code == 404
    assert ApiKey.objects.get().revoked_at is None
    assert admin_client.get("/api/api-keys").get_json()["total"] == 1
    assert admin_client.delete(f"/api/api-keys/{theirs['_id']}").status_code == 204


@pytest.mark.parametrize(
    "body, field",
    [({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 101}, "name"),
     ({"name": "k", "role": "root"}, "role"), ({"name": "k", "expiresAt": "2001-01-01T00:00:00Z"}, "expiresAt"),
     ({"name": "k", "expiresAt": "soon"}, "expiresAt"), ({"name": "k", "userId": "x"}, "userId"),
     ({"name": {"$ne": None}}, "name")],
)
def test_bad_api_key_body_is_400(client, body, field):
    response = client.post("/api/api-keys", json=body)
    assert response.status_code == 400 and field in response.get_json()["errors"]
    assert ApiKey.objects.count() == 0


@pytest.mark.parametrize("role", [MARKETER, ADMIN])
def test_an_api_key_cannot_mint_keys_a_session_can(app, role):
    user = make_user(role, email=f"{role}@example.com")
    session = signed_in(app, user)
    parent = session.post("/api/api-keys", json={"name": "parent", "expiresAt": _in(1)})
    assert parent.status_code == 201  # a signed-in session may
    child = app.test_client().post("/api/api-keys", json={"name": "child"},
                                   headers=bearer(parent.get_json()["key"]))
    assert child.status_code == 403
    assert error_of(child)["error"] == "An API key cannot create API keys: sign in, or use `flask create-api-key`"
    assert ApiKey.objects.count() == 1


def test_cli_creates_a_key(app, staff_user):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-api-key", "--email", "STAFF@example.com", "--name", "cron"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert app.test_client().get("/api/auth/me", headers=bearer(key)).status_code == 200
    assert AuditEvent.objects.get(action="api_key.create").via == "cli"
    missing = runner.invoke(args=["create-api-key", "--email", "nobody@example.com", "--name", "x"])
    assert missing.exit_code != 0 and "not found" in missing.output
    too_high = runner.invoke(args=["create-api-key", "--email", "staff@example.com", "--name", "x",
                                   "--role", "admin"])
    assert too_high.exit_code != 0


def test_development_admin_key_without_google(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        app = start_web(make_app(APP_ENV="development", GOOGLE_CLIENT_ID=None, GOOGLE_CLIENT_SECRET=None))
    line = next(r.getMessage() for r in caplog.records if "development admin API key" in r.getMessage())
    key = re.search(r"(crm_\S+)", line).group(1)
    me = app.test_client().get("/api/auth/me", headers=bearer(key))
    assert me.status_code == 200 and me.get_json()["role"] == ADMIN
    assert ApiKey.objects.count() == 0  # held in memory only: gone with the process
    minted = app.test_client().post("/api/api-keys", headers=bearer(key), json={"name": "forever", "role": ADMIN})
    assert minted.status_code == 403  # it cannot make a key that would outlive it
    assert ApiKey.objects.count() == 0


def test_a_viewer_key_of_an_admin_acts_as_a_viewer_and_cannot_revoke_the_admins_keys(app, admin_client):
    admin_key = admin_client.post("/api/api-keys", json={"name": "deploy"}).get_json()
    viewer_key = admin_client.post("/api/api-keys", json={"name": "dashboard", "role": VIEWER}).get_json()
    other_viewer = admin_client.post("/api/api-keys", json={"name": "tv", "role": VIEWER}).get_json()
    anon = app.test_client()
    me = anon.get("/api/auth/me", headers=bearer(viewer_key["key"])).get_json()
    assert (me["role"], me["userRole"], me["authVia"]) == (VIEWER, ADMIN, "api_key")
    refused = anon.delete(f"/api/api-keys/{admin_key['_id']}", headers=bearer(viewer_key["key"]))
    assert refused.status_code == 403
    assert ApiKey.objects.get(pk=admin_key["_id"]).revoked_at is None
    assert anon.get("/api/customers", headers=bearer(admin_key["key"])).status_code == 200
    assert anon.delete(f"/api/api-keys/{other_viewer['_id']}", headers=bearer(viewer_key["key"])).status_code == 204
    assert admin_client.get("/api/auth/me").get_json()["role"] == ADMIN  # a session acts with the account's role
    assert admin_client.get("/api/auth/me").get_json()["authVia"] == "session"


@pytest.mark.parametrize("overrides", [
    {"APP_ENV": "testing", "GOOGLE_CLIENT_ID": None, "GOOGLE_CLIENT_SECRET": None},
    {"APP_ENV": "development"},  # Google configured: no key
])
def test_no_development_key_otherwise(make_app, caplog, overrides):
    with caplog.at_level(logging.WARNING):
        start_web(make_app(**overrides))
    assert not any("development admin API key" in r.getMessage() for r in caplog.records)


# --- CSRF ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers, allowed",
    [
        ({"Origin": "http://localhost"}, True),
        ({"Origin": "http://localhost:5000"}, True),            # FRONTEND_URL
        ({"Origin": "https://admin.example.com"}, True),        # CORS_ORIGINS
        ({"Origin": "https://evil.example.com"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "http://localhost.evil.com"}, False),
        ({"Origin": "", "Referer": "http://localhost/api/docs"}, True),
        ({"Origin": "", "Referer": "https://evil.example.com/page"}, False),
        ({"Origin": ""}, False),
    ],
)
def test_csrf_origin_check_for_cookie_sessions(make_app, headers, allowed):
    app = make_app(CORS_ORIGINS=["https://admin.example.com"])
    client = signed_in(app, make_user(MARKETER))
    if headers.get("Origin") == "":
        del client.environ_base["HTTP_ORIGIN"]
        headers = {k: v for k, v in headers.items() if k != "Origin"}
    response = client.post("/api/customers", json={"name": "A", "email": "a@example.com"}, headers=headers)
    if allowed:
        assert response.status_code == 201
    else:
        assert response.status_code == 403
        assert error_of(response)["error"].startswith("Cross-site request refused")
        assert counts()["customers"] == 0


def test_api_key_requests_skip_the_csrf_check(app, client):
    key = client.post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    script = app.test_client()
    del script.environ_base["HTTP_ORIGIN"]
    response = script.post("/api/customers", json={"name": "A", "email": "a@example.com"},
                           headers={**bearer(key), "Origin": "https://elsewhere.example.com"})
    assert response.status_code == 201


def test_logout_is_csrf_protected(app, client):
    response = client.post("/api/auth/logout", headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 403
    assert client.get("/api/auth/me").status_code == 200


# --- CORS ------------------------------------------------------------------------------------------------
def test_wildcard_is_never_combined_with_credentials(make_app):
    client = make_app(CORS_ORIGINS=["*"]).test_client()
    response = client.options("/api/customers", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert response.headers.get("Access-Control-Allow-Origin") in (None, "")
    ok = client.options("/api/customers", headers={
        "Origin": "http://localhost:5000", "Access-Control-Request-Method": "POST"})
    assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:5000"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"


# --- rate limits -----------------------------------------------------------------------------------------
def test_writes_are_limited_per_user_with_retry_after(make_app):
    app = make_app(RATELIMIT_WRITE="3 per minute")
    first, second = signed_in(app, make_user(MARKETER)), signed_in(app, make_user(MARKETER))
    statuses = [first.post(path, json={"name": "A", "email": f"a{i}@example.com"}).status_code
                for i, path in enumerate(["/api/customers", "/customers", "/api/customers", "/customers/"])]
    assert statuses == [201, 201, 201, 429]  # the unprefixed alias shares the bucket
    limited = first.post("/api/customers", json={"name": "A", "email": "z@example.com"})
    assert limited.status_code == 429
    assert "error" in error_of(limited)
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert first.get("/api/customers").status_code == 200  # reads are not limited
    assert second.post("/api/customers", json={"name": "B", "email": "b@example.com"}).status_code == 201
    assert Customer.objects.count() == 4


def test_writes_are_limited_per_ip(make_app):
    app = make_app(RATELIMIT_WRITE_IP="2 per minute")
    users = [signed_in(app, make_user(MARKETER)) for _ in range(3)]
    statuses = [c.post("/api/customers", json={"name": "A", "email": f"a{i}@example.com"}).status_code
                for i, c in enumerate(users)]
    assert statuses == [201, 201, 429]


def test_sign_in_is_limited_per_ip(make_app):
    client = make_app(RATELIMIT_LOGIN="2 per minute").test_client()
    statuses = [client.get("/api/auth/google").status_code for _ in range(3)]
    assert statuses == [302, 302, 429]
    assert client.get("/api/auth/status").status_code == 200


# --- headers ---------------------------------------------------------------------------------------------
def test_security_headers_on_api_responses(anon):
    response = anon.get("/api/auth/status")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/api/api-keys", {"name": "ci"}, 201),  # the one response that shows a key
    ("GET", "/api/customers", None, 200),
    ("GET", "/api/auth/me", None, 200),
    ("GET", "/api/customers/000000000000000000000000", None, 404),
])
def test_api_answers_are_never_cached_and_vary_by_caller(client, method, path, body, status):
    response = client.open(path, method=method, json=body)
    assert response.status_code == status
    assert response.headers["Cache-Control"] == "no-store"
    assert {"Authorization", "Cookie"} <= set(response.vary)


def test_static_files_stay_cacheable(make_app, tmp_path):
    (tmp_path / "index.html").write_text("<html></html>")
    (tmp_path / "app.css").write_text("body {}")
    response = make_app(FRONTEND_DIR=str(tmp_path)).test_client().get("/app.css")
    assert response.status_code == 200 and response.headers.get("Cache-Control") != "no-store"


def test_hsts_with_secure_cookies(make_app):
    response = make_app(SESSION_COOKIE_SECURE=True).test_client().get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_csp_allows_exactly_the_inline_scripts_of_html_pages(make_app, tmp_path):
    import base64
    import hashlib

    runtime = "window.__runtime=1;"
    (tmp_path / "index.html").write_text(f"<html><script>{runtime}</script><script src=/static/x.js></script></html>")
    client = make_app(FRONTEND_DIR=str(tmp_path)).test_client()
    csp = client.get("/", headers={"Accept": "text/html"}).headers["Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(runtime.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    docs_csp = client.get("/api/docs").headers["Content-Security-Policy"]
    assert docs_csp.count("'sha256-") == 1


# --- NoSQL injection and mass assignment ----------------------------------------------------------------
OPERATOR_PAYLOADS = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, {"$where": "sleep(100)"},
                     {"$in": ["a"]}, ["$ne"], {"a.b": 1}]
BODY_FIELDS = [
    ("post", "/api/customers", {"name": "A", "email": "a@example.com"}, ["name", "email"]),
    ("patch", "/api/customers/{customer}", {"name": "A"}, ["name", "email"]),
    ("post", "/api/orders", {"customerId": "{customer}", "amount": 1}, ["customerId", "customer", "amount", "date"]),
    ("post", "/api/campaigns/check-audience-size",
     {"rules": [{"field": "totalSpend", "operator": ">", "value": "1"}]}, ["rules", "logicalOperator", "message"]),
    ("post", "/api/api-keys", {"name": "k"}, ["name", "role", "expiresAt"]),
]


def _fill(value, customer_id):
    return json.loads(json.dumps(value).replace("{customer}", customer_id))


@pytest.mark.parametrize("payload", OPERATOR_PAYLOADS, ids=lambda p: json.dumps(p))
@pytest.mark.parametrize("method, path, valid, fields", BODY_FIELDS, ids=lambda x: x if isinstance(x, str) else "")
def test_operators_in_body_fields_are_400_and_write_nothing(
    client, customer, method, path, valid, fields, payload
):
    made = customer()
    path, valid = _fill(path, made["_id"]), _fill(valid, made["_id"])
    before = (counts(), ApiKey.objects.count(), Customer.objects.get(pk=made["_id"]).to_mongo())
    for field in fields:
        response = getattr(client, method)(path, json={**valid, field: payload})
        assert response.status_code == 400, (field, response.get_json())
        assert before == (counts(), ApiKey.objects.count(), Customer.objects.get(pk=made["_id"]).to_mongo())


@pytest.mark.parametrize("rule_key", ["field", "operator", "value"])
@pytest.mark.parametrize("payload", OPERATOR_PAYLOADS, ids=lambda p: json.dumps(p))
def test_operators_inside_rules_are_400(client, rule_key, payload):
    rule = {"field": "totalSpend", "operator": ">", "value": "1", rule_key: payload}
    response = client.post("/api/campaigns/create-audience", json={"rules": [rule], "message": "m"})
    assert response.status_code == 400 and f"rules[0].{rule_key}" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "query",
    ["email[$ne]=x", "email=%7B%22%24ne%22%3Anull%7D", "q[$regex]=.*", "sort=%7B%22%24natural%22%3A1%7D",
     "sort=$where", "customerId[$ne]=x", "from[$gt]=", "role[$ne]=admin", "actor[$ne]=x", "page[$gt]=0"],
)
@pytest.mark.parametrize("path", ["/api/customers", "/api/orders", "/api/users", "/api/audit"])
def test_operators_in_query_strings_never_filter(admin_client, customer, path, query):
    customer()
    response = admin_client.get(f"{path}?{query}")
    assert response.status_code in (200, 400)
    if response.status_code == 200:  # taken literally: matches nothing
        assert response.get_json()["total"] == 0


@pytest.mark.parametrize("q", [".*", "a|b", "^", "(", "\\", "[a-z]+", "$where"])
def test_search_text_is_literal(client, customer, q):
    customer("Alice", "alice@example.com")
    response = client.get("/api/customers", query_string={"q": q})
    assert response.status_code == 200 and response.get_json()["total"] == 0


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("post", "/api/customers", {"name": "A", "email": "a@example.com", "createdBy": "x"}, "createdBy"),
        ("post", "/api/customers", {"name": "A", "email": "a@example.com", "totalSpend": 9e9}, "totalSpend"),
        ("patch", "/api/customers/{customer}", {"numVisits": 100}, "numVisits"),
        ("patch", "/api/customers/{customer}", {"lastVisitDate": "2024-01-01"}, "lastVisitDate"),
        ("post", "/api/orders", {"customerId": "{customer}", "amount": 1, "createdBy": "x"}, "createdBy"),
        ("post", "/api/api-keys", {"name": "k", "user": "x"}, "user"),
        ("post", "/api/api-keys", {"name": "k", "keyHash": "x"}, "keyHash"),
    ],
)
def test_mass_assignment_is_refused(client, customer, method, path, body, field):
    made = customer()
    response = getattr(client, method)(_fill(path, made["_id"]), json=_fill(body, made["_id"]))
    assert response.status_code == 400 and field in response.get_json()["errors"]
    stored = Customer.objects.get(pk=made["_id"])
    assert (stored.total_spend, stored.num_visits, Order.objects.count()) == (0, 0, 0)


def test_role_cannot_be_set_through_sign_in_or_keys(app, client, staff_user):
    response = client.patch(f"/api/users/{staff_user.pk}", json={"role": ADMIN})
    assert response.status_code == 403
    assert User.objects.get(pk=staff_user.pk).role == MARKETER


# --- trusted proxies -------------------------------------------------------------------------------------
@pytest.mark.parametrize("proxies, forwarded, limited", [
    # no proxy trusted: X-Forwarded-For is the client's word, ignored; one bucket for the socket's address
    (0, ["1.1.1.1", "2.2.2.2", "3.3.3.3"], [False, False, True]),
    # one proxy: its own appended hop is believed, so different clients get different buckets ...
    (1, ["1.1.1.1", "2.2.2.2", "3.3.3.3"], [False, False, False]),
    # ... and only that hop: what the client put in front of it changes nothing
    (1, ["6.6.6.6, 5.5.5.5", "7.7.7.7, 5.5.5.5", "8.8.8.8, 5.5.5.5"], [False, False, True]),
    (2, ["6.6.6.6, 5.5.5.5", "7.7.7.7, 5.5.5.5", "8.8.8.8, 5.5.5.5"], [False, False, False]),
])
def test_trusted_proxies_decide_whose_address_is_limited(make_app, proxies, forwarded, limited):
    app = make_app(TRUSTED_PROXIES=proxies, RATELIMIT_LOGIN="2 per minute")
    client = app.test_client()
    statuses = [client.get("/api/auth/google", headers={"X-Forwarded-For": value},
                           environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code for value in forwarded]
    assert [status == 429 for status in statuses] == limited


@pytest.mark.parametrize("method, path, body", [
    ("delete", "/api/customers/{id}", None),
    ("patch", "/api/customers/{id}", {"name": "Mallory was here"}),
    ("put", "/api/customers/by-email/victim@example.com", {"name": "Mallory was here"}),
])
def test_csrf_origin_check_covers_delete_patch_and_put(make_app, method, path, body):
    app = make_app()
    client = signed_in(app, make_user(MARKETER))
    victim = Customer(name="Victim", email="victim@example.com").save()
    response = getattr(client, method)(path.format(id=victim.pk), json=body,
                                       headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 403
    assert error_of(response)["error"].startswith("Cross-site request refused")
    assert Customer.objects.get(pk=victim.pk).name == "Victim"


def test_a_disabled_users_key_is_refused_even_if_it_was_never_revoked(app, client, staff_user, clock):
    """Disabling revokes keys; the key check refuses a disabled owner on its own too (a user
    disabled straight in the database, by a script or a restore, has live keys): within
    API_KEY_CACHE_S, as any process but the one that disabled them through the API sees it."""
    key = client.post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 200
    User.objects(pk=staff_user.pk).update_one(set__disabled=True)
    assert ApiKey.objects.get().revoked_at is None
    clock.advance(seconds=app.config["API_KEY_CACHE_S"] + 0.01)
    assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 401
    from security.api_keys import authenticate

    with app.test_request_context():
        assert authenticate(key) is None  # the key check itself, not only Flask-Login's is_active after it


def _lookups(monkeypatch):
    """Count the key check's trips to the store."""
    from security import api_keys

    calls = []
    real = api_keys._look_up
    monkeypatch.setattr(api_keys, "_look_up", lambda *args: calls.append(1) or real(*args))
    return calls


def test_a_key_is_looked_up_once_a_second_not_on_every_request(app, client, clock, monkeypatch):
    key = client.post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    calls = _lookups(monkeypatch)
    for _ in range(5):
        assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 200
    assert len(calls) == 1
    clock.advance(seconds=1.01)
    assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 200
    assert len(calls) == 2
    for _ in range(3):  # a wrong key is never remembered: each try is checked
        assert app.test_client().get("/api/customers", headers=bearer(key + "x")).status_code == 401
    assert len(calls) == 5


def test_with_no_key_cache_every_request_looks_the_key_up(make_app, monkeypatch):
    app = make_app(API_KEY_CACHE_S=0)
    client = signed_in(app, make_user(MARKETER))
    key = client.post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    calls = _lookups(monkeypatch)
    for _ in range(3):
        assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 200
    assert len(calls) == 3


def test_a_key_revoked_elsewhere_stops_within_a_second_and_here_at_once(app, client, clock):
    """Another process's revocation (a write this process did not make) takes API_KEY_CACHE_S at most;
    revoking through this process's API, or demoting the owner, takes effect on the next request."""
    first = client.post("/api/api-keys", json={"name": "a"}).get_json()
    second = client.post("/api/api-keys", json={"name": "b"}).get_json()
    for made in (first, second):
        assert app.test_client().get("/api/customers", headers=bearer(made["key"])).status_code == 200
    ApiKey.objects(pk=first["_id"]).update_one(set__revoked_at=utcnow())  # as another process does
    clock.advance(seconds=1.01)
    assert app.test_client().get("/api/customers", headers=bearer(first["key"])).status_code == 401
    assert app.test_client().get("/api/customers", headers=bearer(second["key"])).status_code == 200  # remembered
    assert client.delete(f"/api/api-keys/{second['_id']}").status_code == 204
    assert app.test_client().get("/api/customers", headers=bearer(second["key"])).status_code == 401


def test_demoting_a_keys_owner_applies_to_the_key_on_its_next_request(app, staff_user):
    admin = signed_in(app, make_user(ADMIN, email="boss@example.com"))
    key = signed_in(app, staff_user).post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    customer = {"name": "Ann", "email": "ann@example.com"}
    assert app.test_client().post("/api/customers", json=customer, headers=bearer(key)).status_code == 201
    assert admin.patch(f"/api/users/{staff_user.pk}", json={"role": VIEWER}).status_code == 200
    refused = app.test_client().post("/api/customers", json={**customer, "email": "bo@example.com"},
                                     headers=bearer(key))
    assert refused.status_code == 403


@pytest.mark.parametrize("seconds", ["-1", "11", "nan"])
def test_a_key_cache_beyond_ten_seconds_is_refused(seconds):
    import config

    with pytest.raises(config.ConfigError, match="API_KEY_CACHE_S"):
        config.finalize(config.from_env({"API_KEY_CACHE_S": seconds}))


def test_a_remembered_key_stops_at_its_own_expiry(app, client, clock):
    expires = (utcnow() + timedelta(milliseconds=500)).isoformat() + "Z"
    key = client.post("/api/api-keys", json={"name": "short", "expiresAt": expires}).get_json()["key"]
    assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 200
    clock.advance(milliseconds=600)  # within the remembered second, past the key's expiry
    assert app.test_client().get("/api/customers", headers=bearer(key)).status_code == 401


def test_each_app_remembers_its_own_keys(make_app):
    """Two apps in one process (tests, or a script) keep apart what they remembered."""
    first = make_app()
    key = signed_in(first, make_user(MARKETER)).post("/api/api-keys", json={"name": "k"}).get_json()["key"]
    assert first.test_client().get("/api/customers", headers=bearer(key)).status_code == 200
    second = make_app()  # an empty database of its own: the key is unknown there
    assert second.test_client().get("/api/customers", headers=bearer(key)).status_code == 401
