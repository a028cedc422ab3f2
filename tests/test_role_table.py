"""The access matrix written out by hand: who may call what, for every operation of the OpenAPI document.

Independent of ``security/policy.py``: editing the policy table (or losing an entry) cannot change
these expectations, so it fails here. Each row is the least role that may call the operation.
"""
import pytest

from models.roles import ADMIN, MARKETER, VIEWER
from tests.factories import make_user, signed_in

PUBLIC, SIGNED = "public", "signed webhook"
ANONYMOUS = "anonymous"
RANK = {ANONYMOUS: 0, VIEWER: 1, MARKETER: 2, ADMIN: 3}

TABLE = {
    # sign-in, probes, documentation
    ("GET", "/api/auth/google"): PUBLIC, ("GET", "/auth/google"): PUBLIC,
    ("GET", "/api/auth/google/callback"): PUBLIC, ("GET", "/auth/google/callback"): PUBLIC,
    ("POST", "/api/auth/logout"): PUBLIC, ("POST", "/auth/logout"): PUBLIC,
    ("GET", "/api/auth/status"): PUBLIC, ("GET", "/auth/status"): PUBLIC,
    ("GET", "/api/auth/me"): VIEWER, ("GET", "/auth/me"): VIEWER,
    ("GET", "/healthz"): PUBLIC, ("GET", "/readyz"): PUBLIC, ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/openapi.json"): PUBLIC, ("GET", "/api/docs"): PUBLIC, ("GET", "/api/docs/{path}"): PUBLIC,
    ("POST", "/api/delivery-receipts"): SIGNED,
    # customers
    ("GET", "/api/customers"): VIEWER, ("GET", "/customers"): VIEWER,
    ("POST", "/api/customers"): MARKETER, ("POST", "/customers"): MARKETER,
    ("GET", "/api/customers/{customer_id}"): VIEWER, ("GET", "/customers/{customer_id}"): VIEWER,
    ("PATCH", "/api/customers/{customer_id}"): MARKETER, ("PATCH", "/customers/{customer_id}"): MARKETER,
    ("DELETE", "/api/customers/{customer_id}"): MARKETER, ("DELETE", "/customers/{customer_id}"): MARKETER,
    ("GET", "/api/customers/{customer_id}/export"): ADMIN, ("GET", "/customers/{customer_id}/export"): ADMIN,
    **{(method, f"{prefix}/customers/{path}"): role for prefix in ("/api", "") for method, path, role in (
        ("PUT", "by-email/{email}", MARKETER), ("POST", "bulk", MARKETER), ("GET", "export.csv", MARKETER))},
    # orders
    ("GET", "/api/orders"): VIEWER, ("GET", "/orders"): VIEWER,
    ("POST", "/api/orders"): MARKETER, ("POST", "/orders"): MARKETER,
    ("GET", "/api/orders/{order_id}"): VIEWER, ("GET", "/orders/{order_id}"): VIEWER,
    ("POST", "/api/orders/bulk"): MARKETER, ("POST", "/orders/bulk"): MARKETER,
    # data in, consent
    ("POST", "/api/imports"): MARKETER, ("GET", "/api/imports"): VIEWER, ("GET", "/api/imports/{job_id}"): VIEWER,
    ("GET", "/api/imports/{job_id}/errors"): VIEWER,
    ("POST", "/api/suppressions"): MARKETER, ("GET", "/api/suppressions"): VIEWER,
    ("DELETE", "/api/suppressions/{email}"): MARKETER,
    ("GET", "/api/unsubscribe/{token}"): PUBLIC, ("POST", "/api/unsubscribe/{token}"): PUBLIC,
    ("GET", "/api/t/o/{token}"): PUBLIC, ("GET", "/api/t/c/{token}"): PUBLIC,
    # campaigns
    ("GET", "/api/campaigns"): VIEWER, ("GET", "/campaigns"): VIEWER,
    ("POST", "/api/campaigns"): MARKETER, ("POST", "/campaigns"): MARKETER,
    ("POST", "/api/campaigns/check-audience-size"): VIEWER, ("POST", "/campaigns/check-audience-size"): VIEWER,
    ("POST", "/api/campaigns/create-audience"): MARKETER, ("POST", "/campaigns/create-audience"): MARKETER,
    ("GET", "/api/campaigns/{campaign_id}"): VIEWER, ("GET", "/campaigns/{campaign_id}"): VIEWER,
    ("GET", "/api/campaigns/{campaign_id}/deliveries"): VIEWER,
    ("GET", "/campaigns/{campaign_id}/deliveries"): VIEWER,
    **{(method, f"{prefix}/campaigns/{{campaign_id}}/{action}"): role
       for prefix in ("/api", "") for method, action, role in (
           ("POST", "preview", VIEWER), ("POST", "test-send", MARKETER), ("GET", "report", VIEWER),
           ("POST", "decide", MARKETER))},
    ("GET", "/api/reports/campaigns"): VIEWER,
    ("GET", "/api/reports/rfm"): VIEWER,
    ("POST", "/api/events"): MARKETER,
    ("GET", "/api/customers/{customer_id}/timeline"): VIEWER, ("GET", "/customers/{customer_id}/timeline"): VIEWER,
    # declared attributes
    ("GET", "/api/attributes"): VIEWER, ("POST", "/api/attributes"): MARKETER,
    ("GET", "/api/attributes/{key}"): VIEWER, ("PATCH", "/api/attributes/{key}"): MARKETER,
    ("DELETE", "/api/attributes/{key}"): ADMIN,
    # lifecycle flows
    ("GET", "/api/flows"): VIEWER, ("POST", "/api/flows"): MARKETER,
    ("GET", "/api/flows/{flow_id}"): VIEWER, ("PATCH", "/api/flows/{flow_id}"): MARKETER,
    ("DELETE", "/api/flows/{flow_id}"): MARKETER, ("GET", "/api/flows/{flow_id}/stats"): VIEWER,
    ("POST", "/api/flows/{flow_id}/activate"): MARKETER, ("POST", "/api/flows/{flow_id}/pause"): MARKETER,
    ("POST", "/api/flows/{flow_id}/archive"): MARKETER,
    # templates
    ("GET", "/api/templates"): VIEWER, ("POST", "/api/templates"): MARKETER,
    ("GET", "/api/templates/{template_id}"): VIEWER, ("PATCH", "/api/templates/{template_id}"): MARKETER,
    ("DELETE", "/api/templates/{template_id}"): MARKETER,
    **{("POST", f"{prefix}/campaigns/{{campaign_id}}/{action}"): MARKETER
       for prefix in ("/api", "") for action in ("send", "pause", "resume", "cancel", "retry-failed")},
    # segments
    ("GET", "/api/segments"): VIEWER, ("POST", "/api/segments"): MARKETER,
    ("POST", "/api/segments/preview"): VIEWER, ("POST", "/api/segments/{segment_id}/preview"): VIEWER,
    ("GET", "/api/segments/{segment_id}"): VIEWER, ("PATCH", "/api/segments/{segment_id}"): MARKETER,
    ("DELETE", "/api/segments/{segment_id}"): MARKETER,
    # the assistant
    ("POST", "/api/ai/ask"): MARKETER, ("POST", "/api/gemini/ask"): MARKETER, ("POST", "/gemini/ask"): MARKETER,
    ("GET", "/api/ai/send-time"): MARKETER, ("POST", "/api/ai/campaigns/{campaign_id}/summary"): MARKETER,
    ("POST", "/api/ai/segment-rules"): MARKETER, ("POST", "/api/ai/message-variants"): MARKETER,
    ("POST", "/api/ai/flows"): MARKETER,
    # keys (one's own), users, audit
    ("GET", "/api/api-keys"): VIEWER, ("POST", "/api/api-keys"): VIEWER,
    ("DELETE", "/api/api-keys/{key_id}"): VIEWER,
    ("GET", "/api/users"): ADMIN, ("PATCH", "/api/users/{user_id}"): ADMIN, ("GET", "/api/audit"): ADMIN,
}


def documented_operations(app):
    spec = app.test_client().get("/api/openapi.json").get_json()
    return {(method.upper(), path) for path, operations in spec["paths"].items() for method in operations
            if method in ("get", "post", "put", "patch", "delete")}


def test_the_table_covers_exactly_the_documented_operations(app):
    assert documented_operations(app) == set(TABLE)


def _concrete(path):
    return path.replace("{path}", "index.css").replace("{email}", "a@b.co").replace("{", "").replace("}", "") \
        .replace("customer_id", "64b7f0000000000000000000").replace("order_id", "64b7f0000000000000000000") \
        .replace("campaign_id", "64b7f0000000000000000000").replace("segment_id", "64b7f0000000000000000000") \
        .replace("key_id", "64b7f0000000000000000000").replace("user_id", "64b7f0000000000000000000") \
        .replace("job_id", "64b7f0000000000000000000").replace("template_id", "64b7f0000000000000000000")


@pytest.mark.parametrize("role", [ANONYMOUS, VIEWER, MARKETER, ADMIN])
def test_each_role_gets_what_the_table_says(app, role):
    mismatches = []
    for (method, path), least in sorted(TABLE.items()):
        client = app.test_client() if role == ANONYMOUS else signed_in(app, make_user(role))
        status = client.open(_concrete(path), method=method, json={}).status_code
        if least == SIGNED:
            expected = {401}  # no signature: refused whoever asks
        elif least == PUBLIC or RANK[role] >= RANK[least]:
            expected = None  # allowed: anything but 401/403
        else:
            expected = {401} if role == ANONYMOUS else {403}
        if (expected is None and status in (401, 403)) or (expected is not None and status not in expected):
            mismatches.append((method, path, status))
    assert not mismatches, f"{role}: {mismatches}"
