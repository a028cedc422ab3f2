"""The access policy: one table of who may call each endpoint, enforced in one place.

Every endpoint must appear in :data:`POLICY` (unprefixed aliases share their /api twin's entry); an
endpoint missing from it is refused for everyone (fail closed) and fails the role-matrix test. The
table also names the audit action recorded when a call succeeds.
"""
from dataclasses import dataclass

from flask import current_app, g, request
from flask_login import current_user

from errors import ApiError
from security import audit, csrf
from models.roles import ADMIN, MARKETER, VIEWER, at_least, lower

PUBLIC = None
LEGACY_PREFIX = "legacy_"


@dataclass(frozen=True)
class Rule:
    """Who may call an endpoint, and what the audit log calls a successful call."""

    role: str | None
    audit: str | None = None
    target: str | None = None


POLICY = {
    # Sign-in and probes
    "auth.google_login": Rule(PUBLIC),
    "auth.google_callback": Rule(PUBLIC, "login", "user"),
    "auth.status": Rule(PUBLIC),
    "auth.logout": Rule(PUBLIC, "logout", "user"),
    "auth.me": Rule(VIEWER),
    "health.healthz": Rule(PUBLIC),
    "health.readyz": Rule(PUBLIC),
    "health.metrics_text": Rule(PUBLIC),  # its own bearer token (METRICS_TOKEN), checked by the view
    "docs.openapi_json": Rule(PUBLIC),
    "swagger_ui.show": Rule(PUBLIC),
    # CRM data
    "customers.list_customers": Rule(VIEWER),
    "customers.get_customer": Rule(VIEWER),
    "customers.create_customer": Rule(MARKETER, "customer.create", "customer"),
    "customers.update_customer": Rule(MARKETER, "customer.update", "customer"),
    "customers.delete_customer": Rule(MARKETER, "customer.delete", "customer"),
    "customers.export_customer": Rule(ADMIN, "customer.export", "customer"),
    "customers.upsert_customer": Rule(MARKETER, "customer.upsert", "customer"),
    "customers.bulk_customers": Rule(MARKETER, "customer.bulk", "customer"),
    "customers.download_csv": Rule(MARKETER),  # audited by the view, with its filters
    "orders.list_orders": Rule(VIEWER),
    "orders.get_order": Rule(VIEWER),
    "orders.create_order": Rule(MARKETER, "order.create", "order"),
    "orders.bulk_orders": Rule(MARKETER, "order.bulk", "order"),
    # Data in: CSV imports, and consent
    "imports.create_import": Rule(MARKETER, "import.create", "import"),
    "imports.list_imports": Rule(VIEWER),
    "imports.get_import": Rule(VIEWER),
    "imports.list_import_errors": Rule(VIEWER),
    "suppressions.add_suppression": Rule(MARKETER, "suppression.add", "suppression"),
    "suppressions.list_suppressions": Rule(VIEWER),
    "suppressions.remove_suppression": Rule(MARKETER, "suppression.remove", "suppression"),
    # The signed link in messages is its own credential (it can only unsubscribe one customer)
    "unsubscribe.confirm_page": Rule(PUBLIC),
    "unsubscribe.unsubscribe": Rule(PUBLIC),
    # Opens and clicks: a signed token names one delivery (and link); it records, never reveals
    "tracking.open_pixel": Rule(PUBLIC),
    "tracking.click": Rule(PUBLIC),
    "campaigns.list_campaigns": Rule(VIEWER),
    "campaigns.check_audience_size": Rule(VIEWER),
    "campaigns.create_audience": Rule(MARKETER, "campaign.send", "campaign"),
    "campaigns.create_campaign": Rule(MARKETER, "campaign.create", "campaign"),
    "campaigns.get_campaign": Rule(VIEWER),
    "campaigns.list_deliveries": Rule(VIEWER),
    "campaigns.preview_campaign": Rule(VIEWER),
    "campaigns.campaign_report": Rule(VIEWER),
    "reports.campaigns_over_period": Rule(VIEWER),
    "campaigns.test_send_campaign": Rule(MARKETER, "campaign.test_send", "campaign"),
    "campaigns.decide_campaign": Rule(MARKETER, "campaign.decide", "campaign"),
    "events.record_event": Rule(MARKETER),  # a stream of facts, each a record itself: not audited one by one
    "customers.customer_timeline": Rule(VIEWER),
    "attributes.list_attributes": Rule(VIEWER),
    "attributes.get_attribute": Rule(VIEWER),
    "attributes.create_attribute": Rule(MARKETER, "attribute.create", "attribute"),
    "attributes.update_attribute": Rule(MARKETER, "attribute.update", "attribute"),
    "attributes.delete_attribute": Rule(ADMIN, "attribute.delete", "attribute"),  # erases every customer's value
    "flows.list_flows": Rule(VIEWER),
    "flows.get_flow": Rule(VIEWER),
    "flows.flow_stats": Rule(VIEWER),
    "flows.create_flow": Rule(MARKETER, "flow.create", "flow"),
    "flows.update_flow": Rule(MARKETER, "flow.update", "flow"),
    "flows.delete_flow": Rule(MARKETER, "flow.delete", "flow"),
    "flows.activate_flow": Rule(MARKETER, "flow.activate", "flow"),
    "flows.pause_flow": Rule(MARKETER, "flow.pause", "flow"),
    "flows.archive_flow": Rule(MARKETER, "flow.archive", "flow"),
    "reports.rfm_summary": Rule(VIEWER),
    "templates.list_templates": Rule(VIEWER),
    "templates.get_template": Rule(VIEWER),
    "templates.create_template": Rule(MARKETER, "template.create", "template"),
    "templates.update_template": Rule(MARKETER, "template.update", "template"),
    "templates.delete_template": Rule(MARKETER, "template.delete", "template"),
    "campaigns.send_campaign": Rule(MARKETER, "campaign.send", "campaign"),
    "campaigns.pause_campaign": Rule(MARKETER, "campaign.pause", "campaign"),
    "campaigns.resume_campaign": Rule(MARKETER, "campaign.resume", "campaign"),
    "campaigns.cancel_campaign": Rule(MARKETER, "campaign.cancel", "campaign"),
    "campaigns.retry_failed_campaign": Rule(MARKETER, "campaign.retry", "campaign"),
    "segments.list_segments": Rule(VIEWER),
    "segments.get_segment": Rule(VIEWER),
    "segments.preview_rules": Rule(VIEWER),
    "segments.preview_segment": Rule(VIEWER),
    "segments.create_segment": Rule(MARKETER, "segment.create", "segment"),
    "segments.update_segment": Rule(MARKETER, "segment.update", "segment"),
    "segments.delete_segment": Rule(MARKETER, "segment.delete", "segment"),
    # The vendor's webhook authenticates with an HMAC signature, not a user
    "receipts.receive_receipts": Rule(PUBLIC),
    # The AI assistant (it reads nothing it is not given and writes nothing)
    "ai.ask": Rule(MARKETER),
    "ai.send_time": Rule(MARKETER),
    "ai.campaign_summary": Rule(MARKETER),
    "ai.segment_rules": Rule(MARKETER),
    "ai.message_variants": Rule(MARKETER),
    "ai.draft_flow": Rule(MARKETER, "flow.create", "flow"),  # saves a draft (never activates it)
    "gemini.ask": Rule(MARKETER),
    # Keys: anyone signed in manages their own (role capped at theirs); admins manage all
    "api_keys.list_api_keys": Rule(VIEWER),
    "api_keys.create_api_key": Rule(VIEWER, "api_key.create", "api_key"),
    "api_keys.revoke_api_key": Rule(VIEWER, "api_key.revoke", "api_key"),
    # Administration
    "users.list_users": Rule(ADMIN),
    "users.update_user": Rule(ADMIN, "user.update", "user"),
    "audit.list_events": Rule(ADMIN),
}


def policy_key(endpoint):
    """The table key of an endpoint: aliases share their /api twin's entry."""
    return endpoint[len(LEGACY_PREFIX):] if endpoint.startswith(LEGACY_PREFIX) else endpoint


def rule_for(endpoint):
    """The :class:`Rule` of an endpoint, or None when the table lacks it."""
    return POLICY.get(policy_key(endpoint))


def effective_role():
    """The caller's role; through an API key, the lower of the key's and its owner's."""
    if not current_user.is_authenticated:
        return None
    role = current_user.role
    if g.get("auth_via") == "api_key":
        role = lower(role, g.api_key_role)
    return role


def enforce():
    """``before_request``: authenticate, check CSRF for cookie sessions, then the role."""
    if request.endpoint is None:  # 404/405: routing answers
        return
    if request.method == "OPTIONS":  # a CORS preflight: browsers send it without credentials, Flask
        return  # answers it without running a view, and flask-cors adds the allow headers (nothing audited)
    rule = rule_for(request.endpoint)
    if rule is None:
        current_app.logger.error("No access policy for endpoint %s: refusing", request.endpoint)
        raise ApiError(403, "This route has no access policy")
    if rule.role is PUBLIC and rule.audit is None and request.method in csrf.SAFE_METHODS:
        g.audit_rule = rule  # a public read acts for no one: nobody to authenticate (the tracking pixel)
        return
    g.actor = current_user._get_current_object() if current_user.is_authenticated else None
    if current_user.is_authenticated and g.get("auth_via") != "api_key":
        g.auth_via = "session"
        csrf.check_origin()
    if rule.role is not PUBLIC and not current_app.config.get("LOGIN_DISABLED"):
        if not current_user.is_authenticated:
            if g.get("session_expired"):
                raise ApiError.unauthorized("Session expired; sign in again")
            raise ApiError.unauthorized()
        role = effective_role()
        if not at_least(role, rule.role):
            audit.record_current("access.denied", None, details={
                "method": request.method, "path": request.path, "role": role, "needs": rule.role})
            raise ApiError(403, f"Requires the {rule.role} role")
    g.audit_rule = rule  # the caller may run this view: only now can its success be audited


def record(response):
    """``after_request``: write the audit event of a successful audited call, only for a request
    :func:`enforce` let through to its view (never a preflight or Flask's automatic ``OPTIONS``
    answer, nor a refused caller)."""
    rule = g.get("audit_rule")
    if rule is None or rule.audit is None or response.status_code >= 400:
        return response
    if response.headers.get("Idempotent-Replayed"):  # the first answer was recorded already
        return response
    audit.record_request(rule.audit, rule.target, response)
    return response


def init_app(app):
    """Install the checks."""
    app.before_request(enforce)
    app.after_request(record)
