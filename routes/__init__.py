"""Blueprint registration: each resource under ``/api/...``; the seed's resources also unprefixed.

Resource ids in paths use the ``id`` converter: any segment but the fixed paths that sit beside
``/<id>`` routes (``/bulk``, ``/export.csv``, ``/preview``, ``/create-audience``,
``/check-audience-size``, ``/by-email``: so ``/api/customers/by-email/export`` is the upsert of an
address, never the export of a customer called "by-email"). So ``PATCH /api/customers/export.csv`` or ``GET /api/orders/bulk`` is a 405
whose ``Allow`` names the fixed route's methods, not a look-up of a customer called "export.csv".
"""
import re

from werkzeug.routing import BaseConverter

from routes import (
    ai,
    api_keys,
    attributes,
    audit,
    auth,
    campaigns,
    customers,
    events,
    flows,
    imports,
    orders,
    receipts,
    reports,
    segments,
    suppressions,
    templates,
    tracking,
    unsubscribe,
    users,
)

# The seed's resources: also mounted at their unprefixed alias (/customers, ...).
BLUEPRINTS = (
    (auth.bp, "auth"),
    (customers.bp, "customers"),
    (orders.bp, "orders"),
    (campaigns.bp, "campaigns"),
)
# Resources added since: /api only.
API_ONLY_BLUEPRINTS = (
    (segments.bp, "segments"),
    (receipts.bp, "delivery-receipts"),
    (users.bp, "users"),
    (api_keys.bp, "api-keys"),
    (audit.bp, "audit"),
    (imports.bp, "imports"),
    (suppressions.bp, "suppressions"),
    (unsubscribe.bp, "unsubscribe"),
    (templates.bp, "templates"),
    (tracking.bp, "t"),
    (reports.bp, "reports"),
    (attributes.bp, "attributes"),
    (events.bp, "events"),
    (flows.bp, "flows"),
)


FIXED_SEGMENTS = ("bulk", "export.csv", "preview", "create-audience", "check-audience-size", "by-email")


class IdConverter(BaseConverter):
    """One path segment that is not one of :data:`FIXED_SEGMENTS`."""

    regex = r"(?!(?:" + "|".join(re.escape(s) for s in FIXED_SEGMENTS) + r")\Z)[^/]+"


class OptionalTrailingSlash:
    """WSGI middleware: ``/api/customers/<id>/`` is ``/api/customers/<id>`` (one trailing slash dropped).

    Werkzeug's ``strict_slashes=False`` lets a slash-less rule match a URL with a slash only when the
    rule ends in a fixed word, never after a variable part, so every route with an id answered 404.
    """

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if len(path) > 1 and path.endswith("/"):
            environ["PATH_INFO"] = path[:-1]
        return self.wsgi_app(environ, start_response)


def register_blueprints(app):
    """Mount every Blueprint at ``/api/<name>`` and at the legacy alias ``/<name>``."""
    app.url_map.converters["id"] = IdConverter
    app.wsgi_app = OptionalTrailingSlash(app.wsgi_app)
    for blueprint, prefix in BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix=f"/api/{prefix}")
        app.register_blueprint(blueprint, url_prefix=f"/{prefix}", name=f"legacy_{blueprint.name}")
    for blueprint, prefix in API_ONLY_BLUEPRINTS:
        app.register_blueprint(blueprint, url_prefix=f"/api/{prefix}")
    # The assistant: /api/ai (the client), /api/gemini and the seed's /gemini.
    app.register_blueprint(ai.bp, url_prefix="/api/ai")
    app.register_blueprint(ai.gemini_bp, url_prefix="/api/gemini")
    app.register_blueprint(ai.gemini_bp, url_prefix="/gemini", name="legacy_gemini")
