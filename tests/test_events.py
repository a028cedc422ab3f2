"""The track API (``POST /api/events``) and a customer's timeline: orders, messages, opens, clicks and
events, newest first, paged without losing or repeating an item."""
from datetime import timedelta

import pytest

import engine
from models import CustomerEvent
from models.base import utcnow
from tests.checks import error_of
from tests.test_tracking import HTML, PERSON, _urls


@pytest.fixture
def ann(client):
    response = client.post("/api/customers", json={"name": "Ann Lee", "email": "ann@shop.com"})
    assert response.status_code == 201
    return response.get_json()


def test_an_event_is_recorded_for_the_customer_named_by_id_or_email(client, ann):
    by_id = client.post("/api/events", json={"name": "cart.abandoned", "customerId": ann["_id"],
                                             "properties": {"items": [{"sku": "A1", "qty": 2}], "value": 49.5}})
    assert by_id.status_code == 201, by_id.get_json()
    body = by_id.get_json()
    assert body["name"] == "cart.abandoned" and body["customerId"] == ann["_id"]
    assert body["properties"] == {"items": [{"sku": "A1", "qty": 2}], "value": 49.5} and body["at"]
    by_email = client.post("/api/events", json={"name": "trial.started", "email": " ANN@shop.com ",
                                                "at": (utcnow() - timedelta(days=2)).isoformat() + "Z"})
    assert by_email.status_code == 201 and by_email.get_json()["properties"] == {}
    assert CustomerEvent.objects.count() == 2


@pytest.mark.parametrize("body, status, field", [
    ({"name": "x"}, 400, "customerId"),                                            # nobody named
    ({"name": "x", "customerId": "64b7f0000000000000000000", "email": "a@b.co"}, 400, "customerId"),  # both
    ({"name": "x", "customerId": "64b7f0000000000000000000"}, 404, None),          # unknown id
    ({"name": "x", "email": "nobody@shop.com"}, 404, "email"),                    # unknown email
    ({"name": "", "email": "ann@shop.com"}, 400, "name"),
    ({"name": "has space", "email": "ann@shop.com"}, 400, "name"),
    ({"name": "x" * 101, "email": "ann@shop.com"}, 400, "name"),
    ({"name": "x", "email": "ann@shop.com", "properties": {"$where": 1}}, 400, "properties"),
    ({"name": "x", "email": "ann@shop.com", "properties": {"a": {"b.c": 1}}}, 400, "properties"),
    ({"name": "x", "email": "ann@shop.com", "properties": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, 400, "properties"),
    ({"name": "x", "email": "ann@shop.com", "properties": {f"k{i}": i for i in range(51)}}, 400, "properties"),
    ({"name": "x", "email": "ann@shop.com", "properties": {"blob": "x" * 9000}}, 400, "properties"),
    ({"name": "x", "email": "ann@shop.com", "properties": [1, 2]}, 400, "properties"),
    ({"name": "x", "email": "ann@shop.com", "at": "2999-01-01T00:00:00Z"}, 400, "at"),
    ({"name": "x", "email": "ann@shop.com", "extra": 1}, 400, "extra"),
])
def test_bad_events_are_refused_naming_the_problem_and_nothing_is_stored(client, ann, body, status, field):
    response = client.post("/api/events", json=body)
    assert response.status_code == status, response.get_json()
    if field:
        assert field in error_of(response)["errors"]
    assert CustomerEvent.objects.count() == 0


def test_a_viewer_reads_timelines_but_cannot_record_events(viewer_client, ann):
    assert viewer_client.post("/api/events", json={"name": "x", "email": "ann@shop.com"}).status_code == 403
    assert viewer_client.get(f"/api/customers/{ann['_id']}/timeline").status_code == 200


def _timeline(client, customer_id, **query):
    response = client.get(f"/api/customers/{customer_id}/timeline", query_string=query)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_timeline_holds_orders_messages_opens_clicks_and_events_newest_first(client, anon, ann, app, clock):
    now = utcnow()
    assert client.post("/api/orders", json={"customerId": ann["_id"], "amount": 30,
                                            "date": (now - timedelta(days=3)).isoformat() + "Z"}).status_code == 201
    client.post("/api/events", json={"name": "viewed.product", "email": "ann@shop.com",
                                     "at": (now - timedelta(days=2)).isoformat() + "Z", "properties": {"sku": "A1"}})
    campaign = client.post("/api/campaigns", json={"name": "Hello", "rules": [], "subject": "Hi", "html": HTML})
    assert campaign.status_code == 201, campaign.get_json()
    assert client.post(f"/api/campaigns/{campaign.get_json()['_id']}/send").status_code in (200, 202)
    assert engine.wait_idle(app, timeout=60)
    clock.advance(hours=1)  # read later, by a person
    urls = [url.replace("http://localhost:5000", "") for url in _urls(engine.vendor(app).messages[0].html)]
    assert anon.get(urls[3], headers={"User-Agent": PERSON}).status_code == 200  # the pixel
    assert anon.get(urls[0], headers={"User-Agent": PERSON}).status_code == 302  # the first link
    items = _timeline(client, ann["_id"])["items"]
    kinds = [item["type"] for item in items]
    assert set(kinds) == {"order", "event", "message", "open", "click"}, kinds
    assert [item["at"] for item in items] == sorted((item["at"] for item in items), reverse=True)
    assert kinds[-2:] == ["event", "order"]  # the oldest two
    message = next(item for item in items if item["type"] == "message")
    assert message["campaignId"] == campaign.get_json()["_id"] and message["status"] in ("SENT", "DELIVERED")
    click = next(item for item in items if item["type"] == "click")
    assert click["link"] == 0 and click["deliveryId"] == message["deliveryId"] and "suspectedBot" in click
    event = next(item for item in items if item["type"] == "event")
    assert event["name"] == "viewed.product" and event["properties"] == {"sku": "A1"}
    only = _timeline(client, ann["_id"], types="order,event")
    assert [item["type"] for item in only["items"]] == ["event", "order"] and only["total"] == 2


def test_paging_through_a_long_timeline_returns_every_item_once(client, ann):
    same_moment = (utcnow() - timedelta(days=1)).replace(microsecond=0).isoformat() + "Z"
    for i in range(23):  # orders and events, many at the very same moment
        client.post("/api/orders", json={"customerId": ann["_id"], "amount": i + 1, "date": same_moment})
        client.post("/api/events", json={"name": f"e{i}", "email": "ann@shop.com", "at": same_moment})
    seen, page = [], 1
    while True:
        body = _timeline(client, ann["_id"], page=page, perPage=7)
        assert body["total"] == 46
        if not body["items"]:
            break
        seen += [item.get("orderId") or item.get("eventId") for item in body["items"]]
        page += 1
    assert len(seen) == 46 and len(set(seen)) == 46


@pytest.mark.parametrize("query, field", [({"types": "order,nope"}, "types"), ({"types": ""}, "types"),
                                          ({"page": 101, "perPage": 20}, "page"), ({"perPage": 101}, "perPage")])
def test_bad_timeline_queries_are_400(client, ann, query, field):
    response = client.get(f"/api/customers/{ann['_id']}/timeline", query_string=query)
    assert response.status_code == 400 and field in error_of(response)["errors"]


def test_an_unknown_customer_has_no_timeline(client):
    assert client.get("/api/customers/64b7f0000000000000000000/timeline").status_code == 404


def test_deleting_a_customer_deletes_their_events_and_the_export_holds_them(client, admin_client, ann):
    client.post("/api/events", json={"name": "x", "email": "ann@shop.com", "properties": {"note": "private"}})
    exported = admin_client.get(f"/api/customers/{ann['_id']}/export").get_json()
    assert [event["name"] for event in exported["events"]] == ["x"]
    assert client.delete(f"/api/customers/{ann['_id']}").status_code == 204
    assert CustomerEvent.objects.count() == 0
