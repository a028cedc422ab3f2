"""Cross-cutting behaviour: login required, error shapes, configuration, CORS, the served frontend."""
import logging
import re
import secrets

import pytest

from tests.checks import error_of

from app import create_app
from config import ConfigError, finalize, from_env, production_problems
from security.policy import POLICY, PUBLIC, Rule

PUBLIC_ENDPOINTS = {"auth", "legacy_auth", "health", "docs", "swagger_ui", "receipts", "unsubscribe", "tracking"}


def data_routes(app):
    """Every (method, path) of a data route, taken from the URL map so new routes are covered."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in PUBLIC_ENDPOINTS:
            continue
        path = rule.rule.replace("<customer_id>", "64b7f0000000000000000000").replace(
            "<order_id>", "64b7f0000000000000000000"
        )
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_data_route_requires_login(app, anon):
    routes = list(data_routes(app))
    assert len(routes) >= 22  # 11 data routes, each also under its legacy alias
    for method, path in routes:
        response = anon.open(path, method=method, json={})
        assert response.status_code == 401, (method, path)
        assert error_of(response) == {"error": "Authentication required"}


def test_login_disabled_opens_data_routes_with_a_warning(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        app = make_app(LOGIN_DISABLED=True, APP_ENV="development")
    assert any("LOGIN_DISABLED" in r.message for r in caplog.records)
    assert app.test_client().get("/api/customers").status_code == 200


def test_unknown_route_is_json_404(client):
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert "error" in response.get_json()


@pytest.mark.parametrize(
    "method, path",
    [("put", "/api/customers"), ("delete", "/api/customers/"), ("post", "/api/customers/x"),
     ("delete", "/api/campaigns/create-audience"), ("get", "/api/auth/logout"), ("put", "/orders")],
)
def test_wrong_method_is_json_405(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert "error" in response.get_json()
    assert response.headers["Allow"]


@pytest.mark.parametrize("method, path, allowed", [
    ("patch", "/api/customers/export.csv", {"GET", "HEAD", "OPTIONS"}),
    ("delete", "/api/customers/export.csv", {"GET", "HEAD", "OPTIONS"}),
    ("patch", "/customers/export.csv", {"GET", "HEAD", "OPTIONS"}),
    ("get", "/api/customers/bulk", {"POST", "OPTIONS"}),
    ("delete", "/api/customers/bulk", {"POST", "OPTIONS"}),
    ("get", "/api/orders/bulk", {"POST", "OPTIONS"}),
    ("get", "/api/segments/preview", {"POST", "OPTIONS"}),
    ("patch", "/api/segments/preview", {"POST", "OPTIONS"}),
    ("get", "/api/campaigns/create-audience", {"POST", "OPTIONS"}),
    ("get", "/api/campaigns/check-audience-size", {"POST", "OPTIONS"}),
])
def test_a_fixed_path_beside_an_id_route_answers_405_with_its_own_methods(admin_client, method, path, allowed):
    """Not a look-up of a record called "bulk" (a 400 or 404): the fixed route's methods, truly."""
    response = getattr(admin_client, method)(path, headers={"Origin": "http://localhost:5000"})
    assert response.status_code == 405, response.get_json()
    assert set(response.headers["Allow"].split(", ")) == allowed
    preflight = admin_client.options(path)
    assert set(preflight.headers["Allow"].split(", ")) == allowed


def test_docs_page_without_its_slash_answers_405_with_allow_to_other_methods(client):
    """Matched only through the optional slash, other methods were a 404."""
    for method in ("trace", "delete", "post"):
        response = client.open("/api/docs", method=method.upper())
        assert response.status_code == 405, method
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert client.get("/api/docs").status_code == 200


@pytest.mark.parametrize("path", ["/api/customers/{id}/", "/customers/{id}/", "/api/customers/{id}/export/",
                                  "/api/customers/", "/api/campaigns/"])
def test_a_trailing_slash_is_optional_after_an_id_too(admin_client, path):
    """Werkzeug matches a trailing slash only after a fixed word: every route with an id answered 404."""
    customer = admin_client.post("/api/customers", json={"name": "Ann", "email": "ann@x.com"}).get_json()
    response = admin_client.get(path.format(id=customer["_id"]))
    assert response.status_code == 200, response.get_json()
    assert admin_client.patch(f"/api/customers/{customer['_id']}/", json={"name": "Bo"}).get_json()["name"] == "Bo"


def test_oversized_body_is_json_413(client):
    body = '{"name": "%s", "email": "a@example.com"}' % ("x" * (1024 * 1024 + 1))
    response = client.post("/api/customers", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "Request body too large: this endpoint takes at most 1,048,576 bytes"


def test_unexpected_error_is_json_500_without_details(make_app, monkeypatch):
    app = make_app()
    monkeypatch.setitem(POLICY, "boom", Rule(PUBLIC))

    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/api/boom")
    assert response.status_code == 500
    assert error_of(response) == {"error": "Internal server error"}


# --- configuration -----------------------------------------------------------------------------
def test_aliases_for_mongo_uri_and_secret():
    config = from_env({"MONGODB_URI": "mongodb://db/crm", "SECRET_KEY": "s3cret"})
    assert config["MONGO_URI"] == "mongodb://db/crm" and config["SECRET_KEY"] == "s3cret"
    config = from_env({"MONGO_URI": "mongodb://a/x", "MONGODB_URI": "mongodb://b/y",
                       "SESSION_SECRET": "one", "SECRET_KEY": "two"})
    assert config["MONGO_URI"] == "mongodb://a/x" and config["SECRET_KEY"] == "one"


def test_defaults():
    config = from_env({})
    assert config["PORT"] == 5000
    assert config["FRONTEND_URL"] == "http://localhost:5000"
    assert config["MONGO_URI"] is None
    assert config["SECRET_KEY"] is None
    assert config["GOOGLE_DISCOVERY_URL"].startswith("https://accounts.google.com/")
    assert config["MAX_CONTENT_LENGTH"] == 1024 * 1024


STRONG = "Zq8vN3kP0wXe7RtY2uIo5pAs9dFg4hJl"
HTTPS = {"FRONTEND_URL": "https://crm.example.com"}
GOOGLE = {"GOOGLE_CLIENT_ID": "id", "GOOGLE_CLIENT_SECRET": "GOCSPX-r4nd0mG00gl3v4lu3Qx7",
          "ADMIN_EMAILS": "boss@example.com", "ALLOWED_EMAIL_DOMAINS": "example.com",
          "PUBLIC_URL": "https://crm.example.com"}


@pytest.mark.parametrize(
    "environ, problem",
    [
        ({"APP_ENV": "production", **HTTPS}, "SESSION_SECRET (or SECRET_KEY) is not set"),
        ({"FLASK_ENV": "production", **HTTPS}, "SESSION_SECRET (or SECRET_KEY) is not set"),
        ({"APP_ENV": "production", "SESSION_SECRET": "short-value", **HTTPS}, "weak"),
        ({"APP_ENV": "production", "SESSION_SECRET": "a" * 64, **HTTPS}, "weak"),
        ({"APP_ENV": "production", "SESSION_SECRET": "0123456789" * 3 + "0123", **HTTPS}, "weak"),
        ({"APP_ENV": "production", "SESSION_SECRET": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", **HTTPS}, "weak"),
        ({"APP_ENV": "production", "SESSION_SECRET": "Pa55w0rd!" * 4, **HTTPS}, "weak"),
        ({"APP_ENV": "production", "SESSION_SECRET": "1029384756" * 4, **HTTPS}, "weak"),
        ({"APP_ENV": "production", "SESSION_SECRET": STRONG}, "SESSION_COOKIE_SECURE is off"),
        ({"APP_ENV": "production", "SESSION_SECRET": STRONG, **HTTPS, "SESSION_COOKIE_SECURE": "false"},
         "SESSION_COOKIE_SECURE is off"),
        ({"APP_ENV": "production", "SESSION_SECRET": STRONG, **HTTPS, "LOGIN_DISABLED": "true"},
         "LOGIN_DISABLED is set"),
    ],
)
def test_production_refuses_unsafe_config(environ, problem):
    with pytest.raises(ConfigError, match=re.escape(problem)):
        finalize(from_env(environ))


README_SESSION_SECRET = "change-me-to-48-random-characters-from-secrets-token-urlsafe"  # the README's own example


@pytest.mark.parametrize("name, value, problem", [
    ("SESSION_SECRET", README_SESSION_SECRET, "SESSION_SECRET is a placeholder (it contains 'change-me')"),
    ("SESSION_SECRET", "Zq8vN3kP0wXe7RtY2uIoEXAMPLE5pAs9dFg4hJl", "SESSION_SECRET is a placeholder"),
    ("SESSION_SECRET", "my-Secret-Zq8vN3kP0wXe7RtY2uIo5pAs9dFg4hJl", "SESSION_SECRET is a placeholder"),
    ("UNSUBSCRIBE_SECRET", "x", "UNSUBSCRIBE_SECRET is weak"),
    ("UNSUBSCRIBE_SECRET", "changeme" + STRONG, "UNSUBSCRIBE_SECRET is a placeholder"),
    ("VENDOR_WEBHOOK_SECRET", "x", "VENDOR_WEBHOOK_SECRET is weak"),
    ("VENDOR_WEBHOOK_SECRET", "change-me-too", "VENDOR_WEBHOOK_SECRET is a placeholder"),
    ("GOOGLE_CLIENT_SECRET", "your-google-client-secret", "GOOGLE_CLIENT_SECRET is a placeholder"),
    ("SMTP_PASSWORD", "change-me", "SMTP_PASSWORD is a placeholder"),
    ("FIRST_USER_ADMIN", "true", "FIRST_USER_ADMIN is set"),
])
def test_production_checks_every_secret_and_refuses_placeholders(name, value, problem):
    environ = {"APP_ENV": "production", "SESSION_SECRET": STRONG, **HTTPS, name: value}
    with pytest.raises(ConfigError, match=re.escape(problem)):
        finalize(from_env(environ))


def test_production_accepts_real_secrets_everywhere():
    environ = {"APP_ENV": "production", **HTTPS, "SESSION_SECRET": secrets.token_urlsafe(48),
               "UNSUBSCRIBE_SECRET": secrets.token_urlsafe(48), "VENDOR_WEBHOOK_SECRET": secrets.token_hex(32),
               "SMTP_PASSWORD": "hunter2"}  # not ours to judge beyond placeholders
    assert finalize(from_env(environ))


@pytest.mark.parametrize("environ, refused", [
    ({}, False),  # nothing configured: development, safely
    ({**GOOGLE}, True),  # Google configured and no APP_ENV: a stranger's account would sign in to a dev server
    ({**GOOGLE, "APP_ENV": "development"}, False),  # asked for
    ({**GOOGLE, "FLASK_ENV": "development"}, False),
    ({"GOOGLE_CLIENT_ID": "id"}, False),  # half a client is no sign-in
])
def test_development_must_be_chosen_when_google_sign_in_is_configured(environ, refused):
    if refused:
        with pytest.raises(ConfigError, match="APP_ENV is not set and Google sign-in is configured"):
            finalize(from_env(environ))
    else:
        assert finalize(from_env(environ))["APP_ENV"] == "development"


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_hex(16),
                                  lambda: secrets.token_urlsafe(48)])
def test_random_secrets_are_strong_enough(make):
    for _ in range(500):
        assert not production_problems({"SECRET_KEY": make(), "SESSION_COOKIE_SECURE": True})


@pytest.mark.parametrize("name", ["MONGO_TIMEOUT_MS", "ENGINE_THREADS", "GEMINI_TIMEOUT_S"])
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_a_setting_that_must_be_positive_refuses_anything_else_by_name(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be a positive number"):
        from_env({name: value})


def test_a_random_hex_secret_with_few_distinct_characters_is_accepted():
    # token_hex(16) drew this in CI: nine distinct characters, 128 random bits
    assert not production_problems({"SECRET_KEY": "d92dfede27eddfede5d6def217e5f66e", "SESSION_COOKIE_SECURE": True})


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"ALLOWED_EMAIL_DOMAINS": ""}, "sign-in is open to every Google account"),
    ({"ALLOWED_EMAIL_DOMAINS": "", "INVITED_EMAILS": "ada@gmail.com"}, None),
    ({"ALLOWED_EMAIL_DOMAINS": "", "ALLOW_ANY_GOOGLE_ACCOUNT": "true"}, None),
    ({"ADMIN_EMAILS": ""}, "ADMIN_EMAILS is not set"),
])
def test_production_sign_in_must_be_restricted(change, problem):
    environ = {"APP_ENV": "production", "SESSION_SECRET": STRONG, **HTTPS, **GOOGLE, **change}
    if problem:
        with pytest.raises(ConfigError, match=problem):
            finalize(from_env(environ))
    else:
        assert finalize(from_env(environ))


@pytest.mark.parametrize("extra, refused", [
    ({"PUBLIC_URL": ""}, True), ({"PUBLIC_URL": "https://crm.example.com"}, False),
    ({"PUBLIC_URL": "", "GOOGLE_REDIRECT_URI": "https://crm.example.com/api/auth/google/callback"}, False),
])
def test_production_with_google_needs_a_configured_redirect(extra, refused):
    environ = {"APP_ENV": "production", "SESSION_SECRET": STRONG, **HTTPS, **GOOGLE, **extra}
    if refused:
        with pytest.raises(ConfigError, match="neither GOOGLE_REDIRECT_URI nor PUBLIC_URL"):
            finalize(from_env(environ))
    else:
        assert finalize(from_env(environ))


@pytest.mark.parametrize("app_env", ["staging", "prod", "Production ", "produciton", "qa"])
def test_every_app_env_but_development_and_testing_is_production(app_env):
    with pytest.raises(ConfigError, match="SESSION_SECRET"):
        finalize(from_env({"APP_ENV": app_env, **HTTPS}))
    with pytest.raises(ConfigError):
        finalize(from_env({"APP_ENV": app_env, "SESSION_SECRET": STRONG, **HTTPS, "LOGIN_DISABLED": "true"}))
    assert finalize(from_env({"APP_ENV": app_env, "SESSION_SECRET": STRONG, **HTTPS}))


@pytest.mark.parametrize("app_env, allowed", [("development", True), ("testing", False), ("staging", False)])
def test_login_disabled_only_in_development(app_env, allowed):
    environ = {"APP_ENV": app_env, "SESSION_SECRET": STRONG, **HTTPS, "LOGIN_DISABLED": "true"}
    if allowed:
        assert finalize(from_env(environ))["LOGIN_DISABLED"] is True
    else:
        with pytest.raises(ConfigError, match="LOGIN_DISABLED"):
            finalize(from_env(environ))


def test_production_starts_with_a_secret():
    config = finalize(from_env({"APP_ENV": "production", "SESSION_SECRET": STRONG, **HTTPS}))
    assert config["SECRET_KEY"] == STRONG and config["SESSION_COOKIE_SECURE"] is True


def test_development_invents_a_random_secret_per_start(caplog):
    with caplog.at_level(logging.WARNING):
        first, second = finalize(from_env({})), finalize(from_env({}))
    assert first["SECRET_KEY"] and first["SECRET_KEY"] != second["SECRET_KEY"]
    assert any("SESSION_SECRET is not set" in r.message for r in caplog.records)


def test_create_app_in_production_without_secret_fails(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("SESSION_SECRET", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError):
        create_app()


def test_embedded_database_is_announced(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        make_app(MONGO_URI=None)
    assert any("NOT persisted" in r.message for r in caplog.records)


# --- CORS ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "origin, allowed",
    [("http://localhost:5000", True), ("https://admin.example.com", True),
     ("https://evil.example.com", False)],
)
def test_cors_allows_only_configured_origins_with_credentials(make_app, origin, allowed):
    client = make_app(CORS_ORIGINS=["https://admin.example.com"]).test_client()
    response = client.options(
        "/api/auth/status",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    if allowed:
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
    else:
        assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("origin, allowed", [("https://app.example.com", True), ("https://evil.example", False)])
def test_cors_preflight_needs_no_credentials(make_app, origin, allowed):
    client = make_app(CORS_ORIGINS=["https://app.example.com"]).test_client()
    response = client.options("/api/customers", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert (response.headers.get("Access-Control-Allow-Origin") == origin) is allowed
    if allowed:
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()



# --- the served frontend -----------------------------------------------------------------------
@pytest.fixture
def build_dir(tmp_path):
    (tmp_path / "static" / "js").mkdir(parents=True)
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "static" / "js" / "main.js").write_text("console.log('app')")
    (tmp_path / "favicon.ico").write_bytes(b"\x00\x01")
    return tmp_path


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
AXIOS = {"Accept": "application/json, text/plain, */*"}


@pytest.mark.parametrize("path", ["/", "/home", "/home/audience", "/customers", "/campaigns/"])
def test_client_routes_fall_back_to_index(make_app, build_dir, path):
    client = make_app(FRONTEND_DIR=str(build_dir)).test_client()
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200
    assert b'<div id=root>' in response.data


def test_build_files_are_served(make_app, build_dir):
    client = make_app(FRONTEND_DIR=str(build_dir)).test_client()
    response = client.get("/static/js/main.js")
    assert response.status_code == 200 and response.data == b"console.log('app')"
    assert client.get("/favicon.ico").data == b"\x00\x01"
    assert client.get("/static/js/missing.js").status_code == 404
    assert client.get("/../app.py", headers=BROWSER).data != open("app.py", "rb").read()


def test_api_stays_json_when_frontend_is_served(make_app, build_dir):
    client = make_app(FRONTEND_DIR=str(build_dir)).test_client()
    response = client.get("/api/nope", headers=BROWSER)
    assert response.status_code == 404 and response.is_json
    assert client.get("/api/customers", headers=BROWSER).status_code == 401
    assert client.get("/customers", headers=AXIOS).status_code == 401
    assert client.get("/api/auth/status", headers=AXIOS).get_json() == {"isAuthenticated": False}


def test_no_frontend_without_frontend_dir(client):
    response = client.get("/home", headers=BROWSER)
    assert response.status_code == 404 and response.is_json
