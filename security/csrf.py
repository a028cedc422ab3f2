"""CSRF defence for cookie sessions: unsafe requests must come from a trusted origin.

Browsers attach ``Origin`` to cross-site and same-origin unsafe requests (``Referer`` as a fallback);
a forged form or script on another site cannot fake it. API-key requests carry no ambient credential,
so they are exempt.
"""
from urllib.parse import urlsplit

from flask import current_app, request

import config as config_module
from errors import ApiError

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _origin_of(url):
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def trusted_origins():
    """This server itself, ``FRONTEND_URL`` and ``CORS_ORIGINS``."""
    return {request.host_url.rstrip("/"), *config_module.cors_origins(current_app.config)}


def check_origin():
    """Refuse an unsafe cookie-authenticated request whose Origin/Referer is not trusted."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("Origin") or _origin_of(request.headers.get("Referer"))
    if origin is None:
        raise ApiError(403, "Cross-site request refused: Origin or Referer header required")
    if origin.rstrip("/") not in trusted_origins():
        raise ApiError(403, f"Cross-site request refused: origin {origin} is not trusted")
