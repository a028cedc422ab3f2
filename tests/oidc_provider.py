"""A local OpenID Connect provider standing in for Google in tests.

It speaks real HTTP (discovery, authorize, token, JWKS, userinfo) and signs RS256 ID tokens, so
the application's Authlib client runs its real code path. Tests steer it through attributes:
``next_identity`` (who logs in next) and ``id_token_overrides`` / ``sign_with`` (tampering).
"""
import base64
import hashlib
import secrets
import threading
import time
from urllib.parse import urlencode

from flask import Flask, abort, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import make_server

CLIENT_ID = "test-client-id.apps.example"
CLIENT_SECRET = "test-client-secret"


def new_signing_key(kid):
    """A fresh RSA key usable for RS256."""
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"})


class OIDCProvider:
    """The stand-in provider; ``start()`` serves it on 127.0.0.1 and an ephemeral port."""

    def __init__(self):
        self.key = new_signing_key("key-1")
        self.sign_with = None
        self.codes = {}
        self.token_requests = []
        self.authorize_requests = []
        self.next_identity = default_identity()
        self.id_token_overrides = {}
        self.base_url = None
        self._server = None
        self._thread = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self):
        """Serve in a background thread; returns self."""
        self._server = make_server("127.0.0.1", 0, self._wsgi_app(), threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Shut the server down."""
        self._server.shutdown()
        self._thread.join(timeout=5)

    def reset(self):
        """Forget codes, recorded requests and tampering between tests."""
        self.codes.clear()
        self.token_requests.clear()
        self.authorize_requests.clear()
        self.id_token_overrides = {}
        self.sign_with = None
        self.next_identity = default_identity()

    @property
    def discovery_url(self):
        """Where the application reads the discovery document."""
        return f"{self.base_url}/.well-known/openid-configuration"

    # -- what a browser does ---------------------------------------------------------------
    def approve(self, authorize_url):
        """Follow the app's redirect as a browser would, returning the callback URL."""
        import requests

        response = requests.get(authorize_url, allow_redirects=False, timeout=5)
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    # -- the provider ----------------------------------------------------------------------
    def _wsgi_app(self):
        app = Flask("oidc-stand-in")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            base = self.base_url
            return jsonify(
                issuer=base,
                authorization_endpoint=f"{base}/authorize",
                token_endpoint=f"{base}/token",
                userinfo_endpoint=f"{base}/userinfo",
                jwks_uri=f"{base}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                code_challenge_methods_supported=["S256", "plain"],
            )

        @app.get("/authorize")
        def authorize():
            args = request.args.to_dict()
            self.authorize_requests.append(args)
            if args.get("client_id") != CLIENT_ID or args.get("response_type") != "code":
                abort(400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "nonce": args.get("nonce"),
                "redirect_uri": args["redirect_uri"],
                "identity": dict(self.next_identity),
                "code_challenge": args.get("code_challenge"),
            }
            query = urlencode({"code": code, "state": args.get("state", "")})
            return redirect(f"{args['redirect_uri']}?{query}")

        @app.post("/token")
        def token():
            form = request.form.to_dict()
            auth = request.authorization
            client_id = auth.username if auth else form.get("client_id")
            client_secret = auth.password if auth else form.get("client_secret")
            self.token_requests.append({"form": form, "client_id": client_id})
            if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
                return jsonify(error="invalid_client"), 401
            grant = self.codes.pop(form.get("code"), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return jsonify(error="invalid_grant", error_description="Bad code"), 400
            if grant["code_challenge"] and not pkce_matches(form.get("code_verifier"), grant["code_challenge"]):
                return jsonify(error="invalid_grant", error_description="PKCE verification failed"), 400
            now = int(time.time())
            claims = {
                "iss": self.base_url,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 3600,
                "nonce": grant["nonce"],
                **grant["identity"],
                **self.id_token_overrides,
            }
            key = self.sign_with or self.key
            id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
            access_token = secrets.token_urlsafe(16)
            return jsonify(
                access_token=access_token,
                token_type="Bearer",
                expires_in=3600,
                scope="openid email profile",
                id_token=id_token,
            )

        @app.get("/jwks")
        def jwks():
            return jsonify(KeySet([self.key]).as_dict(private=False))

        @app.get("/userinfo")
        def userinfo():
            return jsonify(self.next_identity)

        return app


def pkce_matches(verifier, challenge):
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding equals the challenge."""
    if not verifier:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


def default_identity(**overrides):
    """The claims of the person who logs in next."""
    identity = {
        "sub": "google-sub-0001",
        "email": "Ada.Lovelace@example.com",
        "email_verified": True,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "picture": "https://example.com/ada.png",
    }
    identity.update(overrides)
    return identity
