"""The requests of the Postman collection, in the order a run makes them (``apidocs.postman``).

Each :class:`Step` names an operation of the OpenAPI document by method and path; the collection takes
its summary, auth and documented success status from there. A run works on a fresh server with only
``baseUrl`` and ``apiKey`` set: every name and address it creates carries ``{{run}}`` (set anew by the
first request), its audiences select only the customers it created, ids are saved into collection
variables named after the path parameters, and the deletes come last (the "Clean up" folder).

Operations a run cannot make succeed from an API key alone (a Google sign-in round trip, links only a
sent message carries, key creation that needs a signed-in session) are still here, asserting the
documented answer; ``NOT_IN_COLLECTION`` lists the few left out, each with its reason.
"""
from dataclasses import dataclass, field

RUN_EMAIL = "ada.{{run}}@example.com"
RUN_RULE = {"field": "email", "operator": "contains", "value": "{{run}}"}  # this run's customers only


@dataclass(frozen=True)
class Step:
    method: str
    path: str  # as the OpenAPI document names it
    name: str = ""  # default: the operation's summary
    body: object = None  # JSON body (Postman variables allowed inside strings)
    form: tuple = ()  # multipart fields: (key, value) text, or (key, {"src": path}) file
    status: tuple = ()  # accepted statuses; default: the documented success status
    save: dict = field(default_factory=dict)  # collection variable -> JS expression on ``body``
    values: dict = field(default_factory=dict)  # path parameter -> value, instead of {{parameter}}
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    checks: tuple = ()  # more assertions: (test name, JS expression that must be true)
    prerequest: tuple = ()  # JS lines run before the request
    follow_redirects: bool = True
    send_key: bool = False  # send the API key to a public operation too
    until: str = ""  # JS condition on ``body``: the request is repeated (up to 40 times, 250 ms apart) until it holds


FIRST_STEP_SCRIPT = (
    "// Every run creates its own data: names and addresses carry this run's id.",
    'pm.collectionVariables.set("run", Date.now().toString(36) + Math.floor(Math.random() * 1e4));',
)
SIGN_RECEIPTS = (
    "// Signed as the vendor signs (README: Receipts) when webhookSecret is set; else unsigned (401).",
    'const secret = pm.collectionVariables.get("webhookSecret");',
    "const timestamp = Math.floor(Date.now() / 1000).toString();",
    'pm.request.headers.upsert({key: "X-Webhook-Timestamp", value: timestamp});',
    "if (secret) {",
    '  const mac = CryptoJS.HmacSHA256(timestamp + "." + pm.request.body.raw, secret).toString(CryptoJS.enc.Hex);',
    '  pm.request.headers.upsert({key: "X-Webhook-Signature", value: "sha256=" + mac});',
    "}",
)
ID = "body._id"
AI_STATUSES = (200, 503)  # 503 "not configured" on a server without GEMINI_API_KEY
AI_CHECK = ("answered, or says the assistant is not configured",
            'pm.response.code === 200 || /not configured/i.test(body.error)')
CAMPAIGN_HTML = ('<p>Hi {{ firstName | default("there") }}, our spring range is in: '
                 '<a href="https://shop.example.com/spring">see it</a>.</p>'
                 '<p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p>')

FOLDERS = [
    ("Health", [
        Step("GET", "/healthz", prerequest=FIRST_STEP_SCRIPT),
        Step("GET", "/readyz", checks=(("every dependency is ready", 'body.status === "ready"'),)),
    ]),
    ("Auth", [
        Step("GET", "/api/auth/status", send_key=True,
             checks=(("signed in by the API key", "body.isAuthenticated === true"),)),
        Step("GET", "/api/auth/me", save={"user_id": ID},
             checks=(("says the request acts through a key", 'body.authVia === "api_key"'),)),
        Step("GET", "/api/auth/google", status=(302, 503), follow_redirects=False,
             name="Google sign-in (a browser's step: 302 to Google, or 503 when Google is not configured)"),
    ]),
    ("Custom attributes", [
        Step("POST", "/api/attributes", save={"key": "body.key"},
             body={"key": "plan{{run}}", "type": "string", "description": "Subscription plan"}),
        Step("GET", "/api/attributes",
             checks=(("lists it", 'body.items.some(a => a.key === pm.collectionVariables.get("key"))'),)),
        Step("GET", "/api/attributes/{key}"),
        Step("GET", "/api/reports/rfm", checks=(("every segment is counted", '"champions" in body.segments'),)),
        Step("PATCH", "/api/attributes/{key}", body={"description": "The plan the customer pays for"}),
    ]),
    ("Flows", [
        Step("POST", "/api/flows", save={"flow_id": ID}, headers={"Idempotency-Key": "{{$guid}}"},
             body={"name": "Cart reminder {{run}}", "trigger": {"type": "event", "name": "cart.abandoned.{{run}}"},
                   "steps": [{"type": "wait", "hours": 1},
                             {"type": "send", "subject": "You left something, {{ firstName | default(\"friend\") }}",
                              "text": "Your cart is waiting."},
                             {"type": "update", "addTags": ["reminded"]}]},
             checks=(("saved as a draft", 'body.status === "draft" && body.version === 1'),)),
        Step("GET", "/api/flows", query={"status": "draft"},
             checks=(("lists it", 'body.items.some(f => f._id === pm.collectionVariables.get("flow_id"))'),)),
        Step("GET", "/api/flows/{flow_id}"),
        Step("PATCH", "/api/flows/{flow_id}", body={"reentryDays": 30},
             checks=(("the steps did not change: same version", "body.version === 1 && body.reentryDays === 30"),)),
        Step("POST", "/api/flows/{flow_id}/activate", checks=(("active", 'body.status === "active"'),)),
    ]),
    ("Customers", [
        Step("POST", "/api/customers", body={"name": "Ada Lovelace", "email": RUN_EMAIL, "tags": ["vip"],
                                              "attributes": {"plan{{run}}": "pro"}, "timezone": "Europe/London",
                                              "locale": "en-GB"},
             save={"customer_id": ID, "email": "body.email"}, headers={"Idempotency-Key": "{{$guid}}"},
             checks=(("the address is stored lower-case", "body.email === body.email.toLowerCase()"),)),
        Step("GET", "/api/customers", query={"q": "ada.{{run}}", "sort": "-createdAt"},
             checks=(("finds the customer just created", "body.total === 1"),)),
        Step("GET", "/api/customers/{customer_id}"),
        Step("PATCH", "/api/customers/{customer_id}", body={"name": "Ada King"},
             checks=(("the new name is kept", 'body.name === "Ada King"'),)),
        Step("PUT", "/api/customers/by-email/{email}", body={"name": "Ada King", "tags": ["newsletter"]},
             checks=(("tags are merged", 'body.tags.includes("vip") && body.tags.includes("newsletter")'),)),
        Step("PUT", "/api/customers/by-email/{email}", values={"email": "grace.{{run}}@example.com"},
             name="Create a customer by email (201 when the address is new)",
             body={"name": "Grace Hopper"}, status=(201,), save={"customer2_id": ID}),
        Step("POST", "/api/customers/bulk", query={"mode": "merge"}, headers={"Idempotency-Key": "{{$guid}}"},
             save={"customer3_id": "body.items[0].id"},
             body=[{"name": "Alan Turing", "email": "alan.{{run}}@example.com"},
                   {"name": "Grace Hopper", "email": "grace.{{run}}@example.com", "tags": ["navy"]}],
             checks=(("one created, one updated",
                      "body.counts.created === 1 && body.counts.updated === 1"),)),
        Step("GET", "/api/customers/export.csv", query={"q": "ada.{{run}}"},
             checks=(("a CSV with a header and the customer",
                      'pm.response.text().startsWith("id,name,email") && '
                      'pm.response.text().includes(pm.collectionVariables.get("email"))'),)),
        Step("POST", "/api/events", headers={"Idempotency-Key": "{{$guid}}"},
             body={"name": "cart.abandoned", "email": "{{email}}", "properties": {"value": 49.5}},
             checks=(("recorded for the customer", 'body.customerId === pm.collectionVariables.get("customer_id")'),)),
        Step("GET", "/api/customers/{customer_id}/timeline",
             checks=(("the event is on it",
                      'body.items.some(i => i.type === "event" && i.name === "cart.abandoned")'),)),
        Step("POST", "/api/events", name="Record the event the flow starts from",
             body={"name": "cart.abandoned.{{run}}", "customerId": "{{customer_id}}"}),
        Step("GET", "/api/flows/{flow_id}/stats",
             checks=(("the customer entered", "body.entered === 1"),)),
        Step("POST", "/api/flows/{flow_id}/pause", checks=(("paused", 'body.status === "paused"'),)),
        Step("POST", "/api/flows/{flow_id}/archive", checks=(("archived", 'body.status === "archived"'),)),
        Step("GET", "/api/customers/{customer_id}/export",
             checks=(("everything about the customer",
                      'body.customer._id === pm.collectionVariables.get("customer_id")'),)),
    ]),
    ("Orders", [
        Step("POST", "/api/orders", headers={"Idempotency-Key": "{{$guid}}"},
             body={"customerId": "{{customer_id}}", "amount": 150.5, "externalId": "order-{{run}}-1"},
             save={"order_id": ID}),
        Step("POST", "/api/orders", name="Send the same order again (200: counted once)",
             body={"customerId": "{{customer_id}}", "amount": 150.5, "externalId": "order-{{run}}-1"},
             status=(200,), checks=(("the recorded order", 'body._id === pm.collectionVariables.get("order_id")'),)),
        Step("GET", "/api/orders", query={"customerId": "{{customer_id}}"},
             checks=(("the customer's one order", "body.total === 1"),)),
        Step("GET", "/api/orders/{order_id}"),
        Step("POST", "/api/orders/bulk", headers={"Idempotency-Key": "{{$guid}}"},
             body=[{"customerEmail": "grace.{{run}}@example.com", "amount": 42, "externalId": "order-{{run}}-2"},
                   {"customerId": "{{customer_id}}", "amount": 150.5, "externalId": "order-{{run}}-1"}],
             checks=(("the new order written, the known one skipped",
                      "body.counts.created === 1 && body.counts.skipped === 1"),)),
        Step("GET", "/api/customers/{customer_id}", name="The customer's totals count the order once",
             checks=(("spent 150.5 in one visit", "body.totalSpend === 150.5 && body.numVisits === 1"),)),
    ]),
    ("Imports", [
        Step("POST", "/api/imports", form=(("file", {"src": "apidocs/examples/customers.csv"}),
                                           ("type", "customers"), ("mode", "merge")),
             save={"job_id": ID}),
        Step("GET", "/api/imports"),
        Step("GET", "/api/imports/{job_id}", until='body.status === "completed"',
             checks=(("the file's one row inserted or updated", "body.counts.inserted + body.counts.updated === 1"),)),
        Step("GET", "/api/imports/{job_id}/errors"),
        Step("GET", "/api/customers", name="Find the imported customer", query={"email": "postman.import@example.com"},
             save={"imported_id": "body.items[0]._id"}),
    ]),
    ("Segments", [
        Step("POST", "/api/segments/preview", body={"rules": [RUN_RULE]},
             checks=(("this run's three customers", "body.audienceSize === 3"),)),
        Step("POST", "/api/segments", body={"name": "Postman run {{run}}", "rules": [RUN_RULE]},
             save={"segment_id": ID}),
        Step("GET", "/api/segments"),
        Step("GET", "/api/segments/{segment_id}", checks=(("counted now", "body.audienceSize === 3"),)),
        Step("PATCH", "/api/segments/{segment_id}",
             body={"name": "Postman run {{run}} (renamed)",
                   "rules": [{"op": "OR", "rules": [RUN_RULE, {"field": "email", "operator": "=",
                                                               "value": "nobody.{{run}}@example.com"}]}]},
             checks=(("renamed", 'body.name.endsWith("(renamed)")'),)),
        Step("POST", "/api/segments/{segment_id}/preview",
             checks=(("the same three customers, evaluated now", "body.audienceSize === 3"),)),
        Step("POST", "/api/segments/preview", name="Preview rules with a group",
             body={"rules": [{"op": "AND", "rules": [
                 RUN_RULE, {"field": "totalSpend", "operator": ">", "value": "100"}]}]},
             checks=(("only the customer who spent over 100", "body.audienceSize === 1"),)),
        Step("POST", "/api/campaigns/check-audience-size",
             body={"rules": [{"field": "email", "operator": "contains", "value": "{{run}}"},
                             {"field": "totalSpend", "operator": ">", "value": "100"}],
                   "logicalOperator": "AND"},
             checks=(("the legacy client's count", "body.audienceSize === 1"),)),
    ]),
    ("Templates", [
        Step("POST", "/api/templates", save={"template_id": ID},
             body={"name": "Spring {{run}}", "subject": "Spring is here, {{ firstName | default(\"friend\") }}",
                   "html": CAMPAIGN_HTML}),
        Step("GET", "/api/templates"),
        Step("GET", "/api/templates/{template_id}"),
        Step("PATCH", "/api/templates/{template_id}", body={"preheader": "New colours for the season"}),
    ]),
    ("Campaigns", [
        Step("POST", "/api/campaigns", save={"campaign_id": ID},
             headers={"Idempotency-Key": "{{$guid}}"},
             body={"name": "Spring {{run}}", "templateId": "{{template_id}}", "segmentId": "{{segment_id}}",
                   "messagesPerSecond": 0.1},
             checks=(("a draft", 'body.status === "draft"'),)),
        Step("GET", "/api/campaigns", query={"perPage": "10"},
             checks=(("a JSON array", "Array.isArray(body)"),)),
        Step("GET", "/api/campaigns/{campaign_id}"),
        Step("POST", "/api/campaigns/{campaign_id}/preview", body={"customerId": "{{customer_id}}"},
             checks=(("addressed to the customer", 'body.html.includes("Ada")'),)),
        Step("POST", "/api/campaigns/{campaign_id}/test-send", body={"emails": ["qa.{{run}}@example.com"]},
             checks=(("one result per address", "body.results.length === 1"),)),
        Step("POST", "/api/campaigns/{campaign_id}/send", checks=(("sending", 'body.status === "sending"'),)),
        Step("POST", "/api/campaigns/{campaign_id}/pause", checks=(("paused", 'body.status === "paused"'),)),
        Step("POST", "/api/campaigns/{campaign_id}/resume", checks=(("sending again", 'body.status === "sending"'),)),
        Step("POST", "/api/campaigns/{campaign_id}/pause", name="Pause the campaign again"),
        Step("POST", "/api/campaigns/{campaign_id}/retry-failed"),
        Step("POST", "/api/campaigns/{campaign_id}/cancel", checks=(("cancelled", 'body.status === "cancelled"'),)),
        Step("GET", "/api/campaigns/{campaign_id}/deliveries"),
        Step("GET", "/api/campaigns/{campaign_id}/report"),
        Step("POST", "/api/campaigns", name="Create an A/B test", save={"ab_campaign_id": ID},
             body={"name": "Subject test {{run}}", "text": "Hi {{firstName}}", "rules": [RUN_RULE],
                   "variants": [{"subject": "Spring is here"}, {"subject": "New for spring"}],
                   "abTest": {"testPercent": 50, "metric": "opens", "decideAfterMinutes": 60,
                              "fallback": "manual"}}),
        Step("POST", "/api/campaigns/{campaign_id}/send", name="Send the A/B test",
             values={"campaign_id": "{{ab_campaign_id}}"}),
        Step("POST", "/api/campaigns/{campaign_id}/decide", values={"campaign_id": "{{ab_campaign_id}}"},
             body={"variant": "B"}, checks=(("B won", 'body.abTest.winner === "B"'),)),
        Step("POST", "/api/campaigns/create-audience",
             body={"rules": [{"field": "email", "operator": "contains", "value": "{{run}}"}],
                   "message": "We miss you, {{firstName}}!"}),
        Step("GET", "/api/reports/campaigns", query={"from": "2020-01-01", "to": "2100-01-01"}),
    ]),
    ("Consent", [
        Step("POST", "/api/suppressions", body={"email": "alan.{{run}}@example.com", "note": "asked by phone"},
             save={"suppressed_email": "body.email"}),
        Step("GET", "/api/suppressions"),
        Step("GET", "/api/unsubscribe/{token}", values={"token": "a-token-from-a-sent-message"}, status=(404,),
             name="Unsubscribe page (its token comes from a sent message: an unknown one is 404)"),
        Step("POST", "/api/unsubscribe/{token}", values={"token": "a-token-from-a-sent-message"}, status=(404,),
             name="One-click unsubscribe (an unknown token is 404)"),
    ]),
    ("Tracking", [
        Step("GET", "/api/t/o/{token}", values={"token": "a-token-from-a-sent-message"}, status=(404,),
             name="Open pixel (its token comes from a sent message: an unknown one is 404)"),
        Step("GET", "/api/t/c/{token}", values={"token": "a-token-from-a-sent-message"}, status=(404,),
             name="Tracked link (an unknown token is 404, nothing recorded)"),
    ]),
    ("Delivery receipts", [
        Step("POST", "/api/delivery-receipts", status=(200, 401), prerequest=SIGN_RECEIPTS,
             name="Delivery receipts (signed when webhookSecret is set, else refused with 401)",
             body=[{"vendorMessageId": "unknown-{{run}}", "status": "DELIVERED",
                    "timestamp": "2024-05-01T10:00:00Z"}],
             checks=(("applied when signed, refused when not",
                      'pm.collectionVariables.get("webhookSecret") ? body.unknown === 1 : pm.response.code === 401'),)),
    ]),
    ("AI assistant", [
        Step("POST", "/api/ai/ask", body={"prompt": "Which customers should I win back this month?"},
             status=AI_STATUSES, checks=(AI_CHECK,)),
        Step("POST", "/api/gemini/ask", body={"prompt": "Ideas for a spring campaign?"},
             status=AI_STATUSES, checks=(AI_CHECK,)),
        Step("POST", "/api/ai/segment-rules",
             body={"description": "people who spent over 5000 but haven't visited in three months"},
             status=AI_STATUSES, checks=(AI_CHECK,)),
        Step("POST", "/api/ai/message-variants",
             body={"objective": "win back customers who have not ordered this year"},
             status=AI_STATUSES, checks=(AI_CHECK,)),
        Step("POST", "/api/ai/flows", body={"description": "welcome new customers, and a week later thank those "
                                                         "who ordered"},
             status=(201, 503), checks=(("a draft, or says the assistant is not configured",
                                         '(pm.response.code === 201 && body.status === "draft") || '
                                         '/not configured/i.test(body.error)'),)),
        Step("POST", "/api/ai/campaigns/{campaign_id}/summary", status=AI_STATUSES, checks=(AI_CHECK,)),
        Step("GET", "/api/ai/send-time", status=AI_STATUSES, checks=(AI_CHECK,)),
    ]),
    ("Users, keys and audit", [
        Step("GET", "/api/users"),
        Step("PATCH", "/api/users/{user_id}", body={"disabled": False},
             name="Change a user (here: keep yourself enabled)"),
        Step("GET", "/api/api-keys"),
        Step("POST", "/api/api-keys", body={"name": "ci {{run}}", "role": "viewer"}, status=(403,),
             name="Create an API key (only a signed-in session can: a key is refused with 403)"),
        Step("GET", "/api/audit", query={"action": "customer.export"},
             checks=(("the export above was audited", "body.items.length >= 1"),)),
    ]),
    ("Docs", [
        Step("GET", "/api/openapi.json", checks=(("an OpenAPI 3 document", 'body.openapi.startsWith("3.")'),)),
        Step("GET", "/api/docs"),
        Step("GET", "/api/docs/{path}", values={"path": "swagger-ui.css"}),
    ]),
    ("Clean up", [
        Step("DELETE", "/api/suppressions/{email}", values={"email": "{{suppressed_email}}"}),
        Step("DELETE", "/api/segments/{segment_id}", status=(204,)),
        Step("DELETE", "/api/templates/{template_id}"),
        Step("DELETE", "/api/attributes/{key}"),
        Step("POST", "/api/flows", name="Define a flow to delete", save={"draft_flow_id": ID},
             body={"name": "Draft {{run}}", "trigger": {"type": "customer.created"}, "steps": [{"type": "exit"}]}),
        Step("DELETE", "/api/flows/{flow_id}", values={"flow_id": "{{draft_flow_id}}"}, name="Delete a draft flow"),
        Step("DELETE", "/api/customers/{customer_id}"),
        Step("DELETE", "/api/customers/{customer_id}", values={"customer_id": "{{customer2_id}}"},
             query={"erase": "true"}, name="Erase a customer (and anonymise their deliveries)"),
        Step("DELETE", "/api/customers/{customer_id}", values={"customer_id": "{{customer3_id}}"},
             name="Delete the customer the bulk request created"),
        Step("DELETE", "/api/customers/{customer_id}", values={"customer_id": "{{imported_id}}"},
             name="Delete the imported customer"),
        Step("GET", "/api/customers/{customer_id}", name="A deleted customer is gone", status=(404,)),
        Step("DELETE", "/api/api-keys/{key_id}", values={"key_id": "000000000000000000000000"}, status=(404,),
             name="Revoke an API key (an unknown id is 404)"),
        Step("POST", "/api/auth/logout", name="End the session (a key has none: nothing to end)"),
    ]),
]

NOT_IN_COLLECTION = {
    ("GET", "/metrics"): "Prometheus's scrape, with the METRICS_TOKEN only Prometheus holds (off without one)",
    ("GET", "/api/auth/google/callback"): "Google's redirect back to the server, with a code only Google issues",
}
