"""The AI assistant through the real google-genai SDK, against a local Gemini stand-in."""
import pytest

from models.roles import MARKETER, VIEWER
from tests.checks import counts, error_of
from tests.factories import make_user, signed_in
from tests.gemini_standin import answer, failure


@pytest.fixture
def ai_app(make_app, gemini):
    return make_app(GEMINI_API_KEY="test-gemini-key", GEMINI_API_ENDPOINT=gemini.url,
                    GEMINI_MODEL="gemini-test-model", GEMINI_TIMEOUT_S=1, GEMINI_RETRY_BACKOFF_S=0.01)


@pytest.fixture
def marketer(ai_app):
    return signed_in(ai_app, make_user(MARKETER, email="m@example.com"))


@pytest.mark.parametrize("path", ["/api/ai/ask", "/api/gemini/ask", "/gemini/ask", "/api/ai/ask/"])
def test_ask_returns_geminis_shape_through_the_real_sdk(marketer, gemini, path):
    gemini.script.append(answer("Send it on Tuesday morning."))
    response = marketer.post(path, json={"prompt": "When should I send my campaign?"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["candidates"][0]["content"]["parts"][0]["text"] == "Send it on Tuesday morning."
    assert body["text"] == "Send it on Tuesday morning."
    sent = gemini.requests[-1]
    assert sent["model"] == "gemini-test-model" and sent["method"] == "generateContent"
    assert sent["key"] == "test-gemini-key"
    assert sent["body"]["contents"][0]["parts"][0]["text"] == "When should I send my campaign?"
    assert "CRM" in sent["body"]["systemInstruction"]["parts"][0]["text"]


def test_not_configured_is_503(make_app, gemini):
    app = make_app(GEMINI_API_KEY=None)
    response = signed_in(app, make_user(MARKETER)).post("/api/ai/ask", json={"prompt": "hi"})
    assert response.status_code == 503
    assert error_of(response) == {"error": "AI assistant is not configured"}
    assert gemini.requests == []


def test_busy_upstream_is_retried_then_429_with_retry_after(marketer, gemini):
    gemini.script.extend([failure(429), failure(429), failure(429)])
    response = marketer.post("/api/ai/ask", json={"prompt": "hi"})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 30  # at least what the upstream asks for
    assert len(gemini.requests) == 3  # the first try and two retries


def test_a_retry_can_succeed(marketer, gemini):
    gemini.script.extend([failure(503), answer("Fine now.")])
    response = marketer.post("/api/ai/ask", json={"prompt": "hi"})
    assert response.status_code == 200 and response.get_json()["text"] == "Fine now."
    assert len(gemini.requests) == 2


@pytest.mark.parametrize("status", [500, 503])  # the SDK's own ten-minute retry of 503s is switched off
def test_upstream_failure_is_502(marketer, gemini, status):
    gemini.script.extend([failure(status)] * 3)
    response = marketer.post("/api/ai/ask", json={"prompt": "hi"})
    assert response.status_code == 502
    assert len(gemini.requests) == 3


def test_upstream_refusal_is_502_without_retry(marketer, gemini):
    gemini.script.append(failure(400, "API key not valid"))
    assert marketer.post("/api/ai/ask", json={"prompt": "hi"}).status_code == 502
    assert len(gemini.requests) == 1


def test_timeout_is_504(marketer, gemini):
    gemini.script.append((*answer("too late"), 2.5))
    response = marketer.post("/api/ai/ask", json={"prompt": "hi"})
    assert response.status_code == 504


def test_blocked_prompt_is_422_with_the_reason(marketer, gemini):
    gemini.script.append((200, {"promptFeedback": {"blockReason": "SAFETY"}}))
    response = marketer.post("/api/ai/ask", json={"prompt": "something unsafe"})
    assert response.status_code == 422
    assert "SAFETY" in error_of(response)["error"]


def test_empty_answer_is_502(marketer, gemini):
    gemini.script.append((200, {"candidates": []}))
    assert marketer.post("/api/ai/ask", json={"prompt": "hi"}).status_code == 502


@pytest.mark.parametrize("body", [{}, {"prompt": ""}, {"prompt": "x" * 4001}, {"prompt": 5},
                                  {"prompt": {"$ne": ""}}, {"prompt": "hi", "model": "other"}])
def test_bad_prompt_is_400_and_nothing_is_sent(marketer, gemini, body):
    response = marketer.post("/api/ai/ask", json=body)
    assert response.status_code == 400
    assert gemini.requests == []


def test_viewers_may_not_use_the_assistant(ai_app, gemini):
    viewer = signed_in(ai_app, make_user(VIEWER, email="v@example.com"))
    assert viewer.post("/api/ai/ask", json={"prompt": "hi"}).status_code == 403
    assert gemini.requests == []


def test_assistant_is_rate_limited_per_user(make_app, gemini):
    app = make_app(GEMINI_API_KEY="k", GEMINI_API_ENDPOINT=gemini.url, RATELIMIT_AI="2 per minute")
    client = signed_in(app, make_user(MARKETER))
    statuses = [client.post("/api/ai/ask", json={"prompt": "hi"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # every assistant endpoint draws on the same per-user budget
    assert client.post("/api/ai/segment-rules", json={"description": "vips"}).status_code == 429
    assert client.post("/api/ai/message-variants", json={"objective": "hi"}).status_code == 429
    assert len(gemini.requests) == 2


def test_the_ai_budget_is_the_users_across_sessions_and_keys(make_app, gemini):
    app = make_app(GEMINI_API_KEY="k", GEMINI_API_ENDPOINT=gemini.url, RATELIMIT_AI="2 per minute")
    session = signed_in(app, make_user(MARKETER, email="m@example.com"))
    keys = [session.post("/api/api-keys", json={"name": f"k{i}"}).get_json()["key"] for i in range(2)]
    anon = app.test_client()

    def ask(key):
        return anon.post("/api/ai/ask", json={"prompt": "hi"}, headers={"Authorization": f"Bearer {key}"})

    assert [ask(keys[0]).status_code, ask(keys[0]).status_code] == [200, 200]
    assert ask(keys[1]).status_code == 429  # a new key is not a new budget
    assert session.post("/api/ai/ask", json={"prompt": "hi"}).status_code == 429
    assert len(gemini.requests) == 2


# --- send time ------------------------------------------------------------------------------------------
@pytest.fixture
def order_times(ai_app):
    from datetime import datetime

    from models import Customer, Order

    customer = Customer(name="Ada", email="ada@example.com").save()
    times = [datetime(2024, 5, 6, 9, 15), datetime(2024, 5, 13, 9, 40), datetime(2024, 5, 20, 9, 5),
             datetime(2024, 5, 7, 18, 0), datetime(2024, 5, 14, 18, 30), datetime(2024, 5, 11, 11, 0)]
    for when in times:
        Order(customer_id=customer.pk, amount=10, date=when).save()
    return times


def test_send_time_from_the_order_histogram(marketer, order_times, gemini):
    response = marketer.get("/api/ai/send-time")
    assert response.status_code == 200
    body = response.get_json()
    assert body["best"] == {"dayOfWeek": 2, "weekday": "Monday", "hour": 9, "orders": 3}
    assert body["basedOnOrders"] == 6 and body["timezone"] == "UTC"
    assert [(s["weekday"], s["hour"], s["orders"]) for s in body["histogram"]] == [
        ("Monday", 9, 3), ("Tuesday", 18, 2), ("Saturday", 11, 1)]
    assert body["rationale"] is None
    assert gemini.requests == []  # no model needed


def test_send_time_rationale_sees_only_aggregates(marketer, order_times, gemini):
    gemini.script.append(answer("Monday at 9 is when most of your customers buy."))
    body = marketer.get("/api/ai/send-time?rationale=true").get_json()
    assert body["rationale"] == "Monday at 9 is when most of your customers buy."
    prompt = gemini.requests[-1]["body"]["contents"][0]["parts"][0]["text"]
    assert "Monday 09:00 UTC with 3 of 6 orders" in prompt
    assert "ada" not in prompt.lower()  # no customer data reaches the model


def test_send_time_survives_a_failing_model(marketer, order_times, gemini):
    gemini.script.extend([failure(500)] * 3)
    body = marketer.get("/api/ai/send-time?rationale=true").get_json()
    assert body["best"]["weekday"] == "Monday" and body["rationale"] is None
    assert body["rationaleError"] == "The AI service failed; try again later"


def test_send_time_without_orders(marketer, gemini):
    body = marketer.get("/api/ai/send-time?rationale=true").get_json()
    assert body == {"best": None, "basedOnOrders": 0, "timezone": "UTC", "histogram": [], "rationale": None}
    assert gemini.requests == []


@pytest.mark.parametrize("query", ["rationale=maybe", "rationale[$ne]=1", "extra=1"])
def test_bad_send_time_query_is_400(marketer, query):
    assert marketer.get(f"/api/ai/send-time?{query}").status_code == 400


# --- campaign summary -------------------------------------------------------------------------------------
@pytest.fixture
def finished_campaign(ai_app, marketer):
    from models import Campaign, Customer, Delivery

    customers = [Customer(name=f"C{i}", email=f"c{i}@example.com").save() for i in range(10)]
    campaign = Campaign(name="Spring 2024", message="Hi", status="completed", audience_size=10).save()
    for index, customer in enumerate(customers):
        status, error = ("DELIVERED", None) if index < 8 else ("FAILED", "mailbox_full")
        Delivery(campaign_id=campaign.pk, customer_id=customer.pk, email=customer.email, message="Hi",
                 status=status, error=error, attempts=1).save()
    return campaign


def test_summary_numbers_come_from_the_server(marketer, finished_campaign, gemini):
    gemini.script.append(answer("Spring 2024 reached 8 of 10 customers (80.0%); 2 failed, mostly mailbox_full."))
    response = marketer.post(f"/api/ai/campaigns/{finished_campaign.pk}/summary")
    assert response.status_code == 200
    body = response.get_json()
    assert body["stats"]["delivered"] == 8 and body["stats"]["failed"] == 2
    assert body["stats"]["deliveredPercent"] == 80.0 and body["stats"]["failedPercent"] == 20.0
    assert body["stats"]["failureReasons"] == [{"reason": "mailbox_full", "count": 2}]
    assert body["summary"].startswith("Spring 2024 reached 8 of 10")
    prompt = gemini.requests[-1]["body"]["contents"][0]["parts"][0]["text"]
    assert "delivered: 8" in prompt and "@example.com" not in prompt


def test_summary_uses_the_engagement_and_attributed_revenue(marketer, finished_campaign, gemini):
    from models import Delivery, Order

    records = list(Delivery.objects(status="DELIVERED"))
    Delivery.objects(pk__in=[r.pk for r in records[:3]]).update(set__opens=2, set__human_opens=1)
    Delivery.objects(pk=records[0].pk).update(set__clicks=1, set__human_clicks=1)
    Order(customer_id=records[0].customer_id, amount=150.0, attribution={
        "campaign": finished_campaign.pk, "delivery": records[0].pk, "touch": "click", "at": records[0].created_at}).save()
    gemini.script.append(answer("3 people opened, 1 clicked, and it earned 150 from 1 order."))
    response = marketer.post(f"/api/ai/campaigns/{finished_campaign.pk}/summary")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["stats"]["revenue"], body["stats"]["orders"]) == (150.0, 1)
    assert body["stats"]["opens"]["uniqueHuman"] == 3 and body["stats"]["clicks"]["uniqueHuman"] == 1
    prompt = gemini.requests[-1]["body"]["contents"][0]["parts"][0]["text"]
    assert "Attributed revenue: 150 from 1 orders" in prompt and "who clicked: 1" in prompt


def test_summary_with_an_invented_number_is_refused(marketer, finished_campaign, gemini):
    gemini.script.append(answer("Great: 8 delivered and a 95% open rate!"))
    response = marketer.post(f"/api/ai/campaigns/{finished_campaign.pk}/summary")
    assert response.status_code == 502
    assert error_of(response)["errors"] == {"summary": ["Unexpected number(s): 95"]}


def test_summary_of_unknown_campaign_is_404(marketer, gemini):
    assert marketer.post("/api/ai/campaigns/64b7f0000000000000000000/summary").status_code == 404
    assert gemini.requests == []


# --- segment rules from a description ---------------------------------------------------------------------
@pytest.fixture
def spenders(ai_app):
    from datetime import datetime, timedelta

    from models import Customer

    now = datetime.utcnow()
    rows = [("Big lapsed", 9000, now - timedelta(days=200)), ("Big recent", 8000, now - timedelta(days=5)),
            ("Small lapsed", 100, now - timedelta(days=300)), ("Big never", 6000, None)]
    for index, (name, spend, last_visit) in enumerate(rows):
        Customer(name=name, email=f"s{index}@example.com", total_spend=spend, last_visit_date=last_visit).save()


def rules_answer(rules, logical_operator="AND", explanation="Big spenders who have not visited lately."):
    import json

    return answer(json.dumps({"logicalOperator": logical_operator, "rules": rules, "explanation": explanation}))


LAPSED_BIG_SPENDERS = [{"field": "totalSpend", "operator": ">", "value": "5000"},
                       {"field": "lastVisitDate", "operator": "notWithinLastDays", "value": "90"}]


def test_segment_rules_from_a_description(marketer, gemini, spenders):
    from controllers.ai.compose import SEGMENT_RULES_SCHEMA

    gemini.script.append(rules_answer(LAPSED_BIG_SPENDERS))
    description = "people who spent over 5000 but haven't visited in three months"
    response = marketer.post("/api/ai/segment-rules", json={"description": description})
    assert response.status_code == 200
    assert response.get_json() == {"rules": LAPSED_BIG_SPENDERS, "logicalOperator": "AND",
                                   "explanation": "Big spenders who have not visited lately.",
                                   "audienceSize": 2}  # Big lapsed, Big never (never visited)
    sent = gemini.requests[-1]["body"]
    assert description in sent["contents"][0]["parts"][0]["text"]
    config = sent["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]  # the SDK sends types by name
    assert schema["type"] == "OBJECT" and schema["required"] == SEGMENT_RULES_SCHEMA["required"]
    assert (schema["properties"]["rules"]["min_items"], schema["properties"]["rules"]["type"]) == (1, "ARRAY")
    rule_item = schema["properties"]["rules"]["items"]
    assert rule_item["properties"]["field"]["enum"] == ["totalSpend", "numVisits", "lastVisitDate", "createdAt",
                                                        "name", "email", "emailDomain", "tags",
                                                        "rfm.r", "rfm.f", "rfm.m", "rfm.segment"]
    assert "notWithinLastDays" in rule_item["properties"]["operator"]["enum"]
    assert "notWithinLastDays" in sent["systemInstruction"]["parts"][0]["text"]


def test_segment_rules_saves_nothing(marketer, gemini, spenders):
    from models import Campaign, Segment

    gemini.script.append(rules_answer(LAPSED_BIG_SPENDERS))
    assert marketer.post("/api/ai/segment-rules", json={"description": "lapsed big spenders"}).status_code == 200
    assert (Segment.objects.count(), Campaign.objects.count(), counts()["customers"]) == (0, 0, 4)


def test_segment_rules_nested_group_from_the_flat_answer(marketer, gemini, spenders):
    flattened = [{"field": "totalSpend", "operator": ">=", "value": "6000", "op": "", "rules": []},
                 {"op": "OR", "field": "", "operator": "", "value": "", "rules": [
                     {"field": "name", "operator": "contains", "value": "lapsed"},
                     {"field": "lastVisitDate", "operator": "exists", "value": "false"}]}]
    gemini.script.append(rules_answer(flattened))
    body = marketer.post("/api/ai/segment-rules", json={"description": "big and lapsed or never seen"}).get_json()
    assert body["rules"] == [
        {"field": "totalSpend", "operator": ">=", "value": "6000"},
        {"op": "OR", "rules": [{"field": "name", "operator": "contains", "value": "lapsed"},
                               {"field": "lastVisitDate", "operator": "exists", "value": "false"}]}]
    assert body["audienceSize"] == 2
    preview = marketer.post("/api/segments/preview", json={"rules": body["rules"]}).get_json()
    assert preview["audienceSize"] == 2  # the answer is usable as it stands


def test_invalid_rules_get_one_repair_round_with_the_errors(marketer, gemini, spenders):
    wrong = [{"field": "totalSpend", "operator": ">", "value": "lots"},
             {"field": "lastVisitDate", "operator": "notWithinLastDays", "value": "90"}]
    gemini.script.extend([rules_answer(wrong), rules_answer(LAPSED_BIG_SPENDERS)])
    response = marketer.post("/api/ai/segment-rules", json={"description": "lapsed big spenders"})
    assert response.status_code == 200 and response.get_json()["rules"] == LAPSED_BIG_SPENDERS
    assert len(gemini.requests) == 2
    repair = gemini.requests[1]["body"]["contents"][0]["parts"][0]["text"]
    assert '"value": "lots"' in repair  # the previous answer
    assert "rules[0].value: Must be a number" in repair  # and what was wrong with it, by path
    assert gemini.requests[1]["body"]["generationConfig"]["responseMimeType"] == "application/json"


@pytest.mark.parametrize("first, second, errors", [
    (rules_answer([{"field": "income", "operator": ">", "value": "5"}]),
     rules_answer([{"field": "totalSpend", "operator": "contains", "value": "5"}]),
     {"rules[0].operator": ["For totalSpend, must be one of: >, >=, <, <=, =, !=, between, in, notIn, exists."]}),
    (answer("Sure! Here are your rules."), answer("{\"rules\": "),
     {"_schema": ["Not valid JSON: Expecting value: line 1 column 11 (char 10)"]}),
    (rules_answer([]), rules_answer([]), {"rules": ["At least one rule is needed."]}),
    (answer("[1, 2]"), rules_answer(LAPSED_BIG_SPENDERS, logical_operator="XOR"),
     {"logicalOperator": ["Must be one of: AND, OR."]}),
    (rules_answer(LAPSED_BIG_SPENDERS, explanation=""), answer('{"rules": [], "sql": "DROP"}'),
     {"rules": ["At least one rule is needed."], "sql": ["Unknown field."], "explanation": ["Missing data for required field."]}),
], ids=["bad-field-then-bad-operator", "prose-then-truncated", "empty-twice", "not-object-then-bad-join",
        "empty-explanation-then-extra-key"])
def test_rules_still_invalid_after_repair_are_502_naming_the_problem(marketer, gemini, spenders, first, second,
                                                                     errors):
    gemini.script.extend([first, second])
    response = marketer.post("/api/ai/segment-rules", json={"description": "lapsed big spenders"})
    assert response.status_code == 502
    assert error_of(response) == {"error": "The AI service's rules were not valid, even after a correction",
                                  "errors": errors}
    assert len(gemini.requests) == 2


def test_segment_rules_upstream_errors_map_like_ask(marketer, gemini):
    gemini.script.extend([failure(503)] * 3)
    assert marketer.post("/api/ai/segment-rules", json={"description": "vips"}).status_code == 502
    assert len(gemini.requests) == 3  # retried, but no repair round for an upstream failure


@pytest.mark.parametrize("body", [{}, {"description": ""}, {"description": "x" * 1001}, {"description": 7},
                                  {"description": {"$where": "1"}}, {"description": "vips", "rules": []}])
def test_bad_segment_rules_body_is_400_and_nothing_is_sent(marketer, gemini, body):
    assert marketer.post("/api/ai/segment-rules", json=body).status_code == 400
    assert gemini.requests == []


def test_segment_rules_is_503_without_a_key(make_app, gemini):
    app = make_app(GEMINI_API_KEY=None)
    response = signed_in(app, make_user(MARKETER)).post("/api/ai/segment-rules", json={"description": "vips"})
    assert response.status_code == 503 and gemini.requests == []


# --- message variants -----------------------------------------------------------------------------------
def variants_answer(*variants):
    import json

    return answer(json.dumps({"variants": [{"message": m, "angle": f"angle {i}"} for i, m in enumerate(variants)]}))


def test_message_variants_use_only_allowed_placeholders(marketer, gemini):
    gemini.script.append(variants_answer("Hi {{firstName}}, we miss you!", "{{name}}, your {{totalSpend}} says VIP."))
    response = marketer.post("/api/ai/message-variants",
                             json={"objective": "win back lapsed customers", "tone": "warm", "count": 2})
    assert response.status_code == 200
    assert response.get_json() == {"variants": [
        {"message": "Hi {{firstName}}, we miss you!", "angle": "angle 0", "placeholders": ["firstName"]},
        {"message": "{{name}}, your {{totalSpend}} says VIP.", "angle": "angle 1",
         "placeholders": ["name", "totalSpend"]}], "rejected": []}
    sent = gemini.requests[-1]["body"]
    prompt = sent["contents"][0]["parts"][0]["text"]
    assert "Objective: win back lapsed customers" in prompt and "Tone: warm" in prompt
    schema = sent["generationConfig"]["responseSchema"]["properties"]["variants"]
    assert (schema["min_items"], schema["max_items"]) == (2, 2)  # as the SDK spells them
    assert "{{firstName}}" in sent["systemInstruction"]["parts"][0]["text"]


def test_a_variant_a_campaign_could_not_use_is_rejected_with_the_reason(marketer, gemini):
    gemini.script.append(variants_answer("Hi {{firstName}}!", "Hello {{company}} friend", "{{ name.upper() }}",
                                         "hi {{firstName}}!", ""))
    response = marketer.post("/api/ai/message-variants", json={"objective": "welcome"})
    assert response.status_code == 200
    body = response.get_json()
    assert [v["message"] for v in body["variants"]] == ["Hi {{firstName}}!"]
    assert body["rejected"] == [
        {"message": "Hello {{company}} friend",
         "reason": "Unknown placeholder(s): {{company}}; allowed: {{name}}, {{firstName}}, {{lastName}}, {{email}}, {{totalSpend}}, {{numVisits}}, {{lastVisitDate}}, {{tags}}, {{customerSince}}, {{unsubscribeUrl}}"},
        {"message": "{{ name.upper() }}",
         "reason": "Only placeholders like {{name}} are allowed: {{name}}, {{firstName}}, {{lastName}}, {{email}}, {{totalSpend}}, {{numVisits}}, {{lastVisitDate}}, {{tags}}, {{customerSince}}, {{unsubscribeUrl}}, with an optional fallback: {{ firstName | default(\"there\") }}"},
        {"message": "hi {{firstName}}!", "reason": "The same as another variant."},
        {"message": "", "reason": "The message is empty."}]


def test_every_accepted_variant_works_as_a_campaign_message(marketer, gemini):
    gemini.script.append(variants_answer("Thanks {{name}} ({{email}})", "Dear {{firstName}}, {{totalSpend}} spent"))
    variants = marketer.post("/api/ai/message-variants", json={"objective": "thanks", "count": 2}).get_json()
    for variant in variants["variants"]:
        created = marketer.post("/api/campaigns", json={"name": variant["angle"], "message": variant["message"],
                                                        "rules": LAPSED_BIG_SPENDERS})
        assert created.status_code == 201


@pytest.mark.parametrize("text, errors", [
    ("no json here", {"_schema": ["Not valid JSON: Expecting value: line 1 column 1 (char 0)"]}),
    ('{"variants": "Hi"}', {"variants": ["Must be a list."]}),
    ('{"variants": [{"message": "{{ secret }}"}, {"message": 5}]}', {
        "variants[0]": ["Unknown placeholder(s): {{secret}}; allowed: {{name}}, {{firstName}}, {{lastName}}, {{email}}, {{totalSpend}}, {{numVisits}}, {{lastVisitDate}}, {{tags}}, {{customerSince}}, {{unsubscribeUrl}}"],
        "variants[1]": ["The message is empty."]}),
], ids=["prose", "not-a-list", "none-usable"])
def test_no_usable_variant_is_502(marketer, gemini, text, errors):
    gemini.script.append(answer(text))
    response = marketer.post("/api/ai/message-variants", json={"objective": "welcome"})
    assert response.status_code == 502
    assert error_of(response)["errors"] == errors


@pytest.mark.parametrize("body", [{}, {"objective": ""}, {"objective": "x" * 1001}, {"objective": "hi", "count": 1},
                                  {"objective": "hi", "count": 4}, {"objective": "hi", "count": "2"},
                                  {"objective": "hi", "count": 2.5}, {"objective": "hi", "tone": ""},
                                  {"objective": "hi", "audience": "x" * 501}, {"objective": {"$gt": ""}},
                                  {"objective": "hi", "model": "x"}])
def test_bad_message_variants_body_is_400_and_nothing_is_sent(marketer, gemini, body):
    assert marketer.post("/api/ai/message-variants", json=body).status_code == 400
    assert gemini.requests == []


@pytest.mark.parametrize("path", ["/api/ai/segment-rules", "/api/ai/message-variants"])
def test_viewers_may_not_use_the_composing_endpoints(ai_app, gemini, path):
    viewer = signed_in(ai_app, make_user(VIEWER, email="v@example.com"))
    assert viewer.post(path, json={"description": "vips", "objective": "hi"}).status_code == 403
    assert gemini.requests == []


def test_two_apps_in_one_process_each_ask_their_own_model(make_app, gemini, monkeypatch):
    """Each app's client is its own (app.extensions): not the SDK's process-wide default.

    Asked through the service, inside each app's context: two apps in one process share MongoEngine's
    connection registry (the second's start closes the first's client on the wire tier), not this.
    """
    from services import gemini as service
    from tests.gemini_standin import GeminiStandIn

    other = GeminiStandIn().start()
    try:
        first = make_app(GEMINI_API_KEY="key-one", GEMINI_API_ENDPOINT=gemini.url, GEMINI_RETRIES=0)
        second = make_app(GEMINI_API_KEY="key-two", GEMINI_API_ENDPOINT=other.url, GEMINI_RETRIES=0)

        def ask(app):
            with app.app_context():
                return service.generate("hello", system="be brief").text

        assert ask(first) == "Hello from the stand-in"
        # someone else in the process sets the SDK's environment defaults to somewhere that does not answer
        monkeypatch.setenv("GEMINI_API_KEY", "stray")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
        for _ in range(2):
            assert ask(second) == ask(first) == "Hello from the stand-in"
        assert [r["key"] for r in gemini.requests] == ["key-one"] * 3
        assert [r["key"] for r in other.requests] == ["key-two"] * 2
        assert first.extensions["gemini"] is not second.extensions["gemini"]
    finally:
        other.stop()


@pytest.mark.parametrize("depth", [40, 400, 3000, 200000])
def test_a_deeply_nested_answer_is_a_502_not_a_500(marketer, gemini, spenders, depth):
    """A model answer nested past any sane depth (or past Python's recursion limit) is an invalid
    answer like any other: one repair round, then a 502 naming the problem."""
    nested = '{"rules": [' + '{"op": "AND", "rules": [' * depth + '{"field": "totalSpend", "operator": ">", "value": "1"}' \
        + "]}" * depth + '], "logicalOperator": "AND", "explanation": "x"}'
    gemini.script.extend([answer(nested), answer(nested)])
    response = marketer.post("/api/ai/segment-rules", json={"description": "lapsed big spenders"})
    assert response.status_code == 502, response.get_json()
    assert len(gemini.requests) == 2


# --- a lifecycle flow from a description ----------------------------------------------------------
def flow_answer(**changes):
    import json

    flow = {"name": "Win back", "explanation": "Writes to customers 60 days after their last order.",
            "reentryDays": None,
            "trigger": {"type": "inactive", "days": 60, "rules": [], "segmentId": "", "name": ""},
            "steps": [{"type": "send", "subject": "We miss you, {{ firstName | default(\"there\") }}",
                       "text": "Here is 10% off.", "days": 0, "then": "", "else": "", "rules": []},
                      {"type": "wait", "days": 7, "subject": "", "text": ""},
                      {"type": "branch", "rules": [{"field": "lastVisitDate", "operator": "withinLastDays",
                                                    "value": "7", "op": "", "rules": []}],
                       "then": "exit", "else": "4"},
                      {"type": "exit"},
                      {"type": "update", "addTags": ["lapsed"]}]}
    flow.update(changes)
    return answer(json.dumps(flow))


def test_a_flow_is_drafted_from_a_description_and_never_activated(marketer, gemini):
    from models import Flow

    gemini.script.append(flow_answer())
    response = marketer.post("/api/ai/flows", json={"description": "win back customers after two months"})
    assert response.status_code == 201, response.get_json()
    flow = response.get_json()
    assert flow["status"] == "draft" and flow["name"] == "Win back"
    assert flow["trigger"] == {"type": "inactive", "days": 60}
    assert [s["type"] for s in flow["steps"]] == ["send", "wait", "branch", "exit", "update"]
    assert flow["steps"][1] == {"type": "wait", "days": 7}
    assert flow["steps"][2]["else"] == 4 and flow["steps"][2]["rules"] == [
        {"field": "lastVisitDate", "operator": "withinLastDays", "value": "7"}]
    assert flow["generated"] == {"description": "win back customers after two months",
                                 "explanation": "Writes to customers 60 days after their last order."}
    assert Flow.objects.get().status == "draft"
    sent = gemini.requests[-1]["body"]
    assert "win back customers" in sent["contents"][0]["parts"][0]["text"]
    schema = sent["generationConfig"]["responseSchema"]
    assert schema["properties"]["trigger"]["properties"]["type"]["enum"] == [
        "customer.created", "order.created", "segment.entered", "inactive", "anniversary", "event"]


def test_an_invalid_flow_gets_one_repair_round_naming_its_problems(marketer, gemini):
    from models import Flow, Segment

    segment = Segment(name="VIPs", rules={"op": "AND", "rules": []}).save()
    wrong = flow_answer(trigger={"type": "segment.entered", "segmentId": "64b7f0000000000000000000"},
                        steps=[{"type": "branch", "rules": [], "then": "0"}, {"type": "exit"}])
    gemini.script.extend([wrong, flow_answer(trigger={"type": "segment.entered", "segmentId": str(segment.pk)})])
    response = marketer.post("/api/ai/flows", json={"description": "greet new VIPs"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["trigger"] == {"type": "segment.entered", "segmentId": str(segment.pk)}
    repair = gemini.requests[1]["body"]["contents"][0]["parts"][0]["text"]
    assert "steps[0].then: Must be \"next\", \"exit\" or the index of a later step." in repair
    assert f"{segment.pk}: VIPs" in gemini.requests[0]["body"]["systemInstruction"]["parts"][0]["text"]
    assert Flow.objects.count() == 1


@pytest.mark.parametrize("first, second, errors", [
    (answer("Sure, here is a flow"), flow_answer(steps=[]), {"steps": ["Must be a list of 1 to 50 steps."]}),
    (flow_answer(trigger={"type": "teleport"}), flow_answer(trigger={"type": "segment.entered",
                                                                     "segmentId": "64b7f0000000000000000000"}),
     {"trigger.segmentId": ["No such segment."]}),
    (flow_answer(steps=[{"type": "send", "subject": "Hi {{ secret }}", "text": "x"}]),
     flow_answer(steps=[{"type": "send", "subject": "Hi {{ secret }}", "text": "x"}]),
     {"steps[0].subject": ["Unknown placeholder(s): {{secret}}; allowed: {{name}}, {{firstName}}, {{lastName}}, "
                           "{{email}}, {{totalSpend}}, {{numVisits}}, {{lastVisitDate}}, {{tags}}, "
                           "{{customerSince}}, {{unsubscribeUrl}}"]}),
], ids=["prose-then-no-steps", "bad-trigger-then-unknown-segment", "bad-placeholder-twice"])
def test_a_flow_still_invalid_after_repair_is_502_and_nothing_is_saved(marketer, gemini, first, second, errors):
    from models import Flow

    gemini.script.extend([first, second])
    response = marketer.post("/api/ai/flows", json={"description": "something"})
    assert response.status_code == 502, response.get_json()
    assert error_of(response) == {"error": "The AI service's flow was not valid, even after a correction",
                                  "errors": errors}
    assert Flow.objects.count() == 0 and len(gemini.requests) == 2


def test_a_viewer_cannot_draft_flows(ai_app, gemini):
    viewer = signed_in(ai_app, make_user(VIEWER, email="v@example.com"))
    assert viewer.post("/api/ai/flows", json={"description": "x"}).status_code == 403
    assert not gemini.requests
