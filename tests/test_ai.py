"""The AI assistant through the real google-generativeai SDK, against a local Gemini stand-in."""
import pytest

from security.roles import MARKETER, VIEWER
from tests.conftest import error_of, make_user, signed_in
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


def test_upstream_failure_is_502(marketer, gemini):
    gemini.script.extend([failure(500)] * 3)
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


def test_summary_with_an_invented_number_is_refused(marketer, finished_campaign, gemini):
    gemini.script.append(answer("Great: 8 delivered and a 95% open rate!"))
    response = marketer.post(f"/api/ai/campaigns/{finished_campaign.pk}/summary")
    assert response.status_code == 502
    assert error_of(response)["errors"] == {"summary": ["Unexpected number(s): 95"]}


def test_summary_of_unknown_campaign_is_404(marketer, gemini):
    assert marketer.post("/api/ai/campaigns/64b7f0000000000000000000/summary").status_code == 404
    assert gemini.requests == []
