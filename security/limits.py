"""Rate limits (Flask-Limiter): sign-in per IP; writes per user (sessions and keys together) and per IP.

They are application-wide limits selected by endpoint and method, so the unprefixed aliases share
the /api routes' buckets. Storage is ``RATELIMIT_STORAGE_URI`` (Redis for several processes).
"""
import math

from flask import g, request
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user

from security.policy import policy_key

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
LOGIN_ENDPOINTS = {"auth.google_login", "auth.google_callback"}
AI_BLUEPRINTS = ("ai.", "gemini.")  # every assistant endpoint, present and future
RECEIPTS = "receipts.receive_receipts"
UNLIMITED_WRITES = {"auth.logout", RECEIPTS}  # the vendor's webhook: limited by refusals instead
BULK_ENDPOINTS = {"customers.bulk_customers", "orders.bulk_orders"}
ITEMS_PER_REQUEST = 1000  # a bulk request costs one write per this many items


def _endpoint():
    return policy_key(request.endpoint or "")


def _is_login():
    return _endpoint() in LOGIN_ENDPOINTS


def _is_write():
    return request.method in WRITE_METHODS and request.endpoint is not None and (
        _endpoint() not in UNLIMITED_WRITES
    )


def write_cost():
    """One write, or for a bulk request one per :data:`ITEMS_PER_REQUEST` items (so loading 10,000
    customers costs what 10 single requests do, not 10,000: a shop loads its data in a minute)."""
    if _endpoint() not in BULK_ENDPOINTS:
        return 1
    try:
        items = request.get_json(silent=True)
    except RecursionError:  # nested too deep to read: the view refuses it (400)
        return 1
    return max(1, math.ceil(len(items) / ITEMS_PER_REQUEST)) if isinstance(items, list) else 1


def principal():
    """The rate-limit key of the caller: their user, whether by session or by any of their API keys
    (a second key must not be a second budget)."""
    return f"user:{current_user.get_id()}"


def application_limits(config):
    """The limits, read from config at start."""
    return [
        ApplicationLimit(
            config["RATELIMIT_LOGIN"], key_function=get_remote_address, scope="login",
            exempt_when=lambda: not _is_login(),
        ),
        ApplicationLimit(
            config["RATELIMIT_AI"], key_function=principal, scope="ai",
            exempt_when=lambda: not (_endpoint().startswith(AI_BLUEPRINTS) and current_user.is_authenticated),
        ),
        ApplicationLimit(
            config["RATELIMIT_WRITE"], key_function=principal, scope="write-principal", cost=write_cost,
            exempt_when=lambda: not (_is_write() and current_user.is_authenticated),
        ),
        ApplicationLimit(
            config["RATELIMIT_WRITE_IP"], key_function=get_remote_address, scope="write-ip", cost=write_cost,
            exempt_when=lambda: not _is_write(),
        ),
        ApplicationLimit(  # guessing signatures: only refused requests count, a signing vendor never does
            config["RATELIMIT_RECEIPTS_REFUSED"], key_function=get_remote_address, scope="receipts-refused",
            exempt_when=lambda: _endpoint() != RECEIPTS, deduct_when=lambda response: response.status_code == 401,
        ),
    ]


def _keep_unavailable_retry_after(response):
    """A 503's own ``Retry-After`` (database down) is not the rate-limit window's reset time."""
    own = g.get("retry_after")
    if response.status_code == 503 and own is not None:
        response.headers["Retry-After"] = own
    return response


def init_app(app):
    """Create this app's limiter (storage ``RATELIMIT_STORAGE_URI``, headers incl. Retry-After)."""
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # registered first, so it runs after the limiter's header injection (after_request is LIFO)
    app.after_request(_keep_unavailable_retry_after)
    return Limiter(
        key_func=get_remote_address,
        app=app,
        application_limits=application_limits(app.config),
        key_prefix=app.config.get("RATELIMIT_KEY_PREFIX", "crm"),
    )
