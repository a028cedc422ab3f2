"""Google sign-in through the real Authlib client against the stand-in provider."""
import time

import pytest

from models import User
from tests.checks import error_of, query_params
from tests.oidc_provider import CLIENT_ID, new_signing_key


def test_login_redirects_to_provider_with_state_nonce_and_scopes(anon, oidc_provider):
    response = anon.get("/api/auth/google")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{oidc_provider.base_url}/authorize")
    params = query_params(location)
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert set(params["scope"].split()) == {"openid", "email", "profile"}
    assert params["state"] and params["nonce"]
    assert params["redirect_uri"] == "http://localhost/api/auth/google/callback"


def test_full_sign_in_sets_session_and_redirects_to_frontend_home(anon, google_login):
    response = google_login(anon)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost:5000/home"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie

    status = anon.get("/api/auth/status").get_json()
    assert status["isAuthenticated"] is True
    assert status["user"]["email"] == "ada.lovelace@example.com"
    assert status["user"]["displayName"] == "Ada Lovelace"
    assert status["user"]["firstName"] == "Ada" and status["user"]["lastName"] == "Lovelace"
    assert anon.get("/api/customers").status_code == 200


def test_second_sign_in_updates_the_same_user(make_app, google_login):
    app = make_app()
    google_login(app.test_client())
    first = User.objects.get(google_id="google-sub-0001")
    time.sleep(0.01)
    google_login(app.test_client(), name="Ada King", picture="https://example.com/new.png")
    assert User.objects.count() == 1
    user = User.objects.get(google_id="google-sub-0001")
    assert user.display_name == "Ada King"
    assert user.image == "https://example.com/new.png"
    assert user.created_at == first.created_at
    assert user.last_login_at > first.last_login_at


def test_status_is_200_when_anonymous(anon):
    response = anon.get("/api/auth/status")
    assert response.status_code == 200
    assert response.get_json() == {"isAuthenticated": False}


def test_logout_ends_the_session(anon, google_login):
    google_login(anon)
    response = anon.post("/api/auth/logout")
    assert response.status_code == 200
    assert response.get_json() == {"message": "Logout successful"}
    assert anon.get("/api/auth/status").get_json() == {"isAuthenticated": False}
    assert anon.get("/api/customers").status_code == 401


def test_legacy_auth_aliases(anon, google_login):
    assert anon.get("/auth/status").get_json() == {"isAuthenticated": False}
    assert anon.get("/auth/google").status_code == 302
    google_login(anon)
    assert anon.post("/auth/logout/").get_json() == {"message": "Logout successful"}


@pytest.mark.parametrize(
    "environ, secure",
    [
        ({"FRONTEND_URL": "https://crm.example.com"}, True),
        ({"FRONTEND_URL": "http://localhost:5000"}, False),
        ({}, False),
        ({"FRONTEND_URL": "http://localhost:5000", "SESSION_COOKIE_SECURE": "true"}, True),
        ({"FRONTEND_URL": "https://crm.example.com", "SESSION_COOKIE_SECURE": "false"}, False),
    ],
)
def test_cookie_secure_default_follows_frontend_scheme(environ, secure):
    from config import from_env

    assert from_env(environ)["SESSION_COOKIE_SECURE"] is secure


def test_secure_cookie_and_https_frontend_redirect(make_app, google_login):
    app = make_app(FRONTEND_URL="https://crm.example.com", SESSION_COOKIE_SECURE=True)
    response = google_login(app.test_client())
    assert response.headers["Location"] == "https://crm.example.com/home"
    assert "Secure" in response.headers["Set-Cookie"]


def _callback(client, oidc_provider):
    """Start a login and return the callback path+query the provider sends back."""
    start = client.get("/api/auth/google")
    return oidc_provider.approve(start.headers["Location"]).split("localhost", 1)[1]


def _assert_rejected(response, status, client):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"].startswith("Sign-in failed")
    assert client.get("/api/auth/status").get_json() == {"isAuthenticated": False}
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "tamper, status",
    [
        (lambda url: url.replace("state=", "state=x"), 400),
        (lambda url: url.split("&state=")[0], 400),
        (lambda url: url.replace("code=", "code=x"), 401),
    ],
    ids=["tampered-state", "missing-state", "bad-code"],
)
def test_tampered_callback_is_rejected(anon, oidc_provider, tamper, status):
    url = _callback(anon, oidc_provider)
    _assert_rejected(anon.get(tamper(url)), status, anon)


@pytest.mark.parametrize(
    "overrides",
    [
        {"nonce": "not-the-nonce"},
        {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
        {"aud": "someone-else"},
        {"iss": "https://evil.example.com"},
    ],
    ids=["wrong-nonce", "expired", "wrong-audience", "wrong-issuer"],
)
def test_bad_id_token_claims_are_rejected(anon, oidc_provider, overrides):
    oidc_provider.id_token_overrides = overrides
    _assert_rejected(anon.get(_callback(anon, oidc_provider)), 401, anon)


def test_id_token_signed_by_unknown_key_is_rejected(anon, oidc_provider):
    oidc_provider.sign_with = new_signing_key("key-1")
    _assert_rejected(anon.get(_callback(anon, oidc_provider)), 401, anon)


def test_callback_replay_is_rejected(anon, oidc_provider):
    url = _callback(anon, oidc_provider)
    assert anon.get(url).status_code == 302
    anon.post("/api/auth/logout")
    response = anon.get(url)
    assert response.status_code == 400
    assert anon.get("/api/auth/status").get_json() == {"isAuthenticated": False}


def test_provider_error_is_401(anon):
    anon.get("/api/auth/google")
    response = anon.get("/api/auth/google/callback?error=access_denied&state=x")
    assert response.status_code == 401
    assert "access_denied" in response.get_json()["error"]


def test_callback_without_login_start_is_400(anon):
    response = anon.get("/api/auth/google/callback?code=abc&state=def")
    assert response.status_code == 400
    assert response.get_json()["error"].startswith("Sign-in failed")


def test_google_not_configured_is_503(make_app):
    client = make_app(GOOGLE_CLIENT_ID=None, GOOGLE_CLIENT_SECRET=None).test_client()
    for path in ("/api/auth/google", "/api/auth/google/callback?code=a&state=b"):
        response = client.get(path)
        assert response.status_code == 503
        assert error_of(response) == {"error": "Google sign-in is not configured"}


def test_provider_unreachable_is_502(make_app):
    app = make_app(GOOGLE_DISCOVERY_URL="http://127.0.0.1:9/.well-known/openid-configuration")
    response = app.test_client().get("/api/auth/google")
    assert response.status_code == 502
    assert "unreachable" in response.get_json()["error"]


@pytest.mark.parametrize("settings, expected", [
    ({"PUBLIC_URL": "https://crm.example.com/"}, "https://crm.example.com/api/auth/google/callback"),
    ({"GOOGLE_REDIRECT_URI": "https://login.example.com/cb", "PUBLIC_URL": "https://crm.example.com"},
     "https://login.example.com/cb"),
])
def test_redirect_uri_comes_from_configuration_not_the_host_header(make_app, settings, expected):
    app = make_app(**settings)
    start = app.test_client().get("/api/auth/google", headers={"Host": "evil.example"})
    assert start.status_code == 302
    assert query_params(start.headers["Location"])["redirect_uri"] == expected
