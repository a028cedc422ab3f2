"""Google sign-in through Authlib's OpenID Connect client.

Everything provider-specific lives here so that routes only ask for "the redirect" and "the verified
claims". The discovery document comes from ``GOOGLE_DISCOVERY_URL`` (Google's by default), which is
also how the tests point this code at a local stand-in provider.
"""
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import current_app, url_for
from joserfc.errors import JoseError

from errors import ApiError

CLIENT_NAME = "google"
EXTENSION_KEY = "google_oauth"


class SignInFailed(ApiError):
    """The callback could not be turned into a verified identity."""


def init_app(app):
    """Register the Google client when credentials are configured.

    The Authlib registry is per app: it caches clients (and their discovered metadata), which must
    not leak from one app's configuration into another's.
    """
    oauth = OAuth(app)
    app.extensions[EXTENSION_KEY] = oauth
    if configured(app):
        oauth.register(
            CLIENT_NAME,
            client_id=app.config["GOOGLE_CLIENT_ID"],
            client_secret=app.config["GOOGLE_CLIENT_SECRET"],
            server_metadata_url=app.config["GOOGLE_DISCOVERY_URL"],
            # PKCE (S256) on top of state and nonce: a stolen code is useless without the verifier.
            client_kwargs={"scope": "openid email profile", "timeout": 10, "code_challenge_method": "S256"},
        )


CALLBACK_PATH = "/api/auth/google/callback"


def configured(app):
    """True when Google sign-in has credentials."""
    return bool(app.config.get("GOOGLE_CLIENT_ID") and app.config.get("GOOGLE_CLIENT_SECRET"))


def configured_redirect_uri(config):
    """``GOOGLE_REDIRECT_URI``, else ``PUBLIC_URL`` + the callback path; None when neither is set.

    Never derived from the request's ``Host`` in production (a forged Host would send the code to
    another site): production refuses to start without one of them.
    """
    if config.get("GOOGLE_REDIRECT_URI"):
        return config["GOOGLE_REDIRECT_URI"]
    if config.get("PUBLIC_URL"):
        return config["PUBLIC_URL"].rstrip("/") + CALLBACK_PATH
    return None


def _client():
    client = current_app.extensions[EXTENSION_KEY].create_client(CLIENT_NAME)
    if client is None:
        raise ApiError.unavailable("Google sign-in is not configured")
    return client


def redirect_to_provider():
    """A 302 to the provider's authorization page; state and nonce are kept in the session."""
    client = _client()
    redirect_uri = configured_redirect_uri(current_app.config) or url_for(
        "auth.google_callback", _external=True  # development only: production requires configuration
    )
    try:
        return client.authorize_redirect(redirect_uri)
    except requests.RequestException as exc:
        raise ApiError(502, "Google sign-in is unreachable; try again later") from exc


def verified_claims():
    """Exchange the callback's code and return the ID token's verified claims.

    Authlib checks state (against the session) and the ID token's signature, issuer, audience,
    expiry and nonce. Any failure is a 400 (bad/missing state or code) or 401 (rejected identity).
    """
    client = _client()
    try:
        token = client.authorize_access_token()
    except requests.RequestException as exc:
        raise ApiError(502, "Google sign-in is unreachable; try again later") from exc
    except OAuthError as exc:
        status = 400 if exc.error in ("mismatching_state", "missing_state") else 401
        raise SignInFailed(status, f"Sign-in failed: {exc.description or exc.error}") from exc
    except (JoseError, ValueError, KeyError) as exc:
        raise SignInFailed(401, f"Sign-in failed: the ID token was rejected ({exc})") from exc
    claims = token.get("userinfo")
    if not claims:
        raise SignInFailed(401, "Sign-in failed: no ID token was returned")
    return claims
