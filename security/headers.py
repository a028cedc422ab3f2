"""Security headers on every response, with a CSP the served React build and Swagger UI run under.

Both pages carry inline ``<script>`` blocks (create-react-app inlines its runtime chunk; Swagger UI
inlines its start-up code), so instead of ``'unsafe-inline'`` the CSP of each HTML response lists the
SHA-256 hash of exactly the inline scripts that response contains.
"""
import base64
import functools
import hashlib
import re

from flask import current_app

import config as config_module

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
HSTS = "max-age=31536000; includeSubDomains"


def _script_hashes(html):
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
        if body.strip()
    ]


def content_security_policy(script_hashes=()):
    """The CSP: same-origin everything, API origins for fetch, no framing."""
    return _policy(tuple(config_module.cors_origins(current_app.config)), tuple(script_hashes))


@functools.lru_cache(maxsize=64)
def _policy(origins, script_hashes):
    connect = " ".join(["'self'", *origins])
    return "; ".join([
        "default-src 'self'",
        "script-src " + " ".join(["'self'", *script_hashes]),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: https:",
        "font-src 'self' data:",
        f"connect-src {connect}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def add_security_headers(response):
    """``after_request``: nosniff, no framing, referrer policy, CSP, HSTS when cookies are Secure;
    data answers (JSON, and the CSV export) are ``no-store`` and vary by ``Authorization`` and
    ``Cookie``."""
    hashes = ()
    if response.mimetype == "text/html":
        response.direct_passthrough = False  # files from send_from_directory: read them to hash
        hashes = _script_hashes(response.get_data())
    response.headers["Content-Security-Policy"] = content_security_policy(hashes)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")  # a route may be stricter
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        response.headers["Strict-Transport-Security"] = HSTS
    if response.mimetype in ("application/json", "text/csv"):
        # API answers carry customer data and, once, new API keys: no cache keeps them, and a
        # shared cache must never answer one caller with another's (they depend on who asks)
        response.headers["Cache-Control"] = "no-store"
        response.vary.update(("Authorization", "Cookie"))
    return response


def init_app(app):
    """Install the headers hook."""
    app.after_request(add_security_headers)
