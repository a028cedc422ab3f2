"""Inputs no schema anticipates: every one is a 4xx in the API's error shape, and nothing is written."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import ApiKey, Campaign, Customer, Segment
from tests.checks import error_of

DEEP = "[" * 1000 + "]" * 1000
DEEPISH = '{"name": "A", "email": "a@example.com", "tags": ' + "[" * 100 + "]" * 100 + "}"
BIG_INT = "1" + "0" * 400

# (method, path, raw JSON body, the field named)
BODIES = [
    ("POST", "/api/customers", '{"name": "\\ud800", "email": "a@example.com"}', "name"),
    ("POST", "/api/customers", '{"name": "A", "email": "a\\udfff@example.com"}', "email"),
    ("POST", "/api/customers", '{"name": "A\\u0000B", "email": "a@example.com"}', "name"),
    ("POST", "/api/customers", '{"name": "A", "email": "a@example.com", "\\ud800": 1}', "\ud800"),
    ("POST", "/api/segments", '{"name": "\\udc00", "rules": []}', "name"),
    ("POST", "/api/segments", '{"name": "S", "rules": [{"field": "name", "operator": "=", "value": "\\ud800"}]}',
     "rules[0].value"),
    ("POST", "/api/campaigns", '{"name": "C", "message": "Hi \\ud800", "rules": []}', "message"),
    ("POST", "/api/api-keys", '{"name": "\\ud800"}', "name"),
    ("POST", "/api/customers", DEEP, "_schema"),
    ("POST", "/api/customers", DEEPISH, "_schema"),
    ("POST", "/api/orders", '{"customerId": "000000000000000000000000", "amount": ' + BIG_INT + "}", "amount"),
    ("POST", "/api/orders", '{"customerId": "000000000000000000000000", "amount": 1e400}', "amount"),
    ("POST", "/api/orders", '{"customerId": "000000000000000000000000", "amount": NaN}', "amount"),
    ("POST", "/api/orders", '{"customerId": "000000000000000000000000", "amount": -Infinity}', "amount"),
    ("POST", "/api/segments", '{"name": "S", "rules": [{"field": "totalSpend", "operator": ">", "value": '
     + BIG_INT + "}]}", "rules[0].value"),
]


def _written():
    return (Customer.objects.count(), Segment.objects.count(), Campaign.objects.count(),
            ApiKey.objects.count())


@pytest.mark.parametrize("method, path, body, field", BODIES,
                         ids=[f"{m} {p} {b[:40]}" for m, p, b, _ in BODIES])
def test_unstorable_or_unreadable_json_is_400(client, method, path, body, field):
    before = _written()
    response = client.open(path, method=method, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = error_of(response)
    if field == "_schema":
        assert error["error"] == "JSON nested more than 64 levels deep"
    else:
        assert field in error["errors"], error
    assert _written() == before


def test_patch_with_a_lone_surrogate_changes_nothing(client, customer):
    created = customer()
    response = client.patch(f"/api/customers/{created['_id']}", data='{"name": "\\ud800"}',
                            content_type="application/json")
    assert response.status_code == 400 and "name" in error_of(response)["errors"]
    assert client.get(f"/api/customers/{created['_id']}").get_json()["name"] == created["name"]


def test_sixty_four_levels_are_still_read(client):
    body = '{"name": "A", "email": "a@example.com", "tags": ' + "[" * 62 + "]" * 62 + "}"
    response = client.post("/api/customers", data=body, content_type="application/json")
    assert response.status_code == 400  # read, then refused by the schema (tags are strings)
    assert list(error_of(response)["errors"]) == ["tags[0]"]


def test_valid_unicode_is_stored_as_sent(client):
    response = client.post("/api/customers", json={"name": "Zoë 😀 Ünïcode", "email": "zoe@example.com"})
    assert response.status_code == 201 and response.get_json()["name"] == "Zoë 😀 Ünïcode"


@pytest.mark.parametrize("path, body", [("/api/api-keys", {"name": "k"}), ("/api/auth/me", None)])
def test_login_disabled_routes_that_need_an_identity_are_401(make_app, path, body):
    app = make_app(LOGIN_DISABLED=True, APP_ENV="development")
    client = app.test_client()
    response = client.post(path, json=body) if body else client.get(path)
    assert response.status_code == 401
    assert error_of(response)["error"] == "This needs a signed-in user or an API key: it acts as that user"
    assert ApiKey.objects.count() == 0


# --- every operation, odd inputs -----------------------------------------------------------------
ODD_BODIES = [
    ('{"name": "\\ud800", "email": "\\udfff", "message": "\\ud800", "rules": [], "prompt": "\\ud800"}',
     "application/json"),
    (DEEP, "application/json"),
    ('{"amount": ' + BIG_INT + ', "value": ' + BIG_INT + "}", "application/json"),
    ('{"amount": NaN, "messagesPerSecond": Infinity}', "application/json"),
    ('[1, 2, 3]', "application/json"),
    ('"just a string"', "application/json"),
    ("name=a&email=b", "application/x-www-form-urlencoded"),
    ("\xff\xfe not utf-8", "application/json"),
    ("plain words", "text/plain"),
]


def operations(app):
    """Every (method, path) the API serves, with a well-formed id in each path parameter."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.endpoint in ("auth.logout", "docs.swagger_ui"):
            continue  # logging out would end the test's session; the docs page is HTML
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<{argument}>", "0" * 24)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_no_operation_answers_5xx_to_odd_bodies_or_long_queries(app, admin_client):
    failures, statuses = [], []
    for method, path in operations(app):
        cases = [(body, kind, "") for body, kind in ODD_BODIES] if method != "GET" else []
        cases += [(None, None, "?q=" + "x" * 5000 + "&page=" + BIG_INT + "&per_page=-1&sort=%00")]
        for body, kind, query in cases:
            response = admin_client.open(path + query, method=method, data=body, content_type=kind)
            statuses.append((response.status_code, method, path))
            if response.status_code >= 500 or (response.status_code >= 400 and not response.is_json):
                failures.append((method, path, (body or query)[:30], response.status_code))
    assert not failures, failures
    unsigned = [s for s in statuses if s[0] == 401 and s[2] != "/api/delivery-receipts"]  # a signed webhook
    assert not unsigned, unsigned
    assert [s[0] for s in statuses].count(400) > 40  # the requests reached the handlers


# --- the same, generated: Hypothesis bodies with the odd leaves, against every operation --------------
ODD_STRINGS = st.sampled_from(["\ud800", "a\udfffb", "\x00", "A\u0000B", "x" * 5000, "\u202eevil",
                               "=cmd|' /C calc'!A0", "64b7f0000000000000000000", "2024-02-30", "NaN", "$where",
                               "{{ name.__class__ }}", "a\r\nBcc: x@example.com"])
ODD_TEXT = st.one_of(ODD_STRINGS, st.text(max_size=20))
ODD_NUMBERS = st.one_of(st.integers(min_value=-(10**400), max_value=10**400), st.floats(),
                        st.sampled_from([1e308, -0.0, 10**19, 2**63, -(2**63) - 1]))
ODD_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), ODD_NUMBERS, ODD_TEXT),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(ODD_TEXT, st.sampled_from(
            ["name", "email", "amount", "customerId", "rules", "message", "value", "field", "operator",
             "logicalOperator", "segmentId", "messagesPerSecond", "scheduledAt", "role", "prompt", "$gt"])),
            children, max_size=5)),
    max_leaves=12)


# Valid bodies to spoil one field at a time, so odd values reach the code that stores them.
VALID_BODIES = {
    ("POST", "/api/customers"): {"name": "Ada", "email": "ada@example.com", "tags": ["vip"]},
    ("POST", "/api/segments"): {"name": "Segment", "rules": [{"field": "name", "operator": "=", "value": "x"}]},
    ("POST", "/api/segments/preview"): {"rules": [{"field": "name", "operator": "=", "value": "x"}]},
    ("POST", "/api/campaigns"): {"name": "Campaign", "message": "Hi {{name}}", "rules": []},
    ("POST", "/api/campaigns/create-audience"): {"rules": [], "message": "Hi"},
    ("POST", "/api/campaigns/check-audience-size"): {"rules": [], "message": "Hi"},
    ("POST", "/api/api-keys"): {"name": "key"},
}


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_odd_bodies_never_get_a_5xx(app, admin_client, data):
    writes = [(m, p) for m, p in operations(app) if m != "GET"]
    method, path = data.draw(st.sampled_from(sorted(VALID_BODIES) * 10 + writes), label="operation")
    body = dict(VALID_BODIES.get((method, path), {}))
    if data.draw(st.booleans(), label="spoil one field of a valid body"):
        key = data.draw(st.sampled_from(sorted(body) or ["name"]), label="field")
        body[key] = data.draw(st.one_of(ODD_STRINGS, ODD_NUMBERS, ODD_JSON), label="value")
    else:
        body = data.draw(ODD_JSON, label="body")
    raw = json.dumps(body, ensure_ascii=True, allow_nan=True)
    response = admin_client.open(path, method=method, data=raw, content_type="application/json")
    unconfigured_ai = response.status_code == 503 and ("/ai/" in path or "gemini" in path)  # no GEMINI_API_KEY
    assert response.status_code < 500 or unconfigured_ai, (method, path, raw[:200], response.get_data()[:300])
    if response.status_code >= 400:
        assert response.is_json and "error" in response.get_json()
