"""Revenue attribution: orders after a human click (or a delivery, when the campaign says so) within the
window go to that campaign, last touch across campaigns, once per order whatever path recorded it."""
import re

import pytest
from bson import ObjectId

import engine
from models import Customer, Order
from tests.factories import seed_customers
from tests.test_imports import finished, upload
from tests.test_tracking import HTML, PERSON, SCANNER


def _send(client, name, **extra):
    created = client.post("/api/campaigns", json={"name": name, "html": HTML, "rules": [], **extra})
    assert created.status_code == 201, created.get_json()
    campaign = created.get_json()
    client.post(f"/api/campaigns/{campaign['_id']}/send")
    assert engine.wait_idle(client.application, 30)
    return campaign


def _click(app, email, agent=PERSON):
    message = [m for m in engine.vendor(app).messages if m.to == email][-1]
    url = re.findall(r'href="http://localhost:5000(/api/t/c/[^"]+)"', message.html)[1]
    assert app.test_client().get(url, headers={"User-Agent": agent}).status_code == 302


def _order(client, email, amount, **extra):
    customer = Customer.objects.get(email=email)
    response = client.post("/api/orders", json={"customerId": str(customer.pk), "amount": amount, **extra})
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


@pytest.fixture
def shop(app):
    seed_customers([{"name": "Ada", "email": "ada@shop.com"}, {"name": "Bob", "email": "bob@shop.com"},
                    {"name": "Cy", "email": "cy@shop.com"}])


def test_an_order_inside_the_window_after_a_human_click_is_attributed_and_one_after_it_is_not(
        client, app, shop, clock):
    spring = _send(client, "Spring")
    clock.advance(hours=1)
    _click(app, "ada@shop.com")
    clock.advance(days=4, hours=23)
    inside = _order(client, "ada@shop.com", 50)
    clock.advance(hours=2)  # five days and an hour after the click
    outside = _order(client, "ada@shop.com", 70)
    never_clicked = _order(client, "bob@shop.com", 30)
    assert inside["attribution"]["campaignId"] == spring["_id"] and inside["attribution"]["touch"] == "click"
    assert outside["attribution"] is None and never_clicked["attribution"] is None
    report = client.get(f"/api/campaigns/{spring['_id']}/report").get_json()
    assert (report["revenue"], report["orders"], report["revenuePerRecipient"]) == (50.0, 1, round(50 / 3, 4))


def test_the_last_touch_across_campaigns_wins(client, app, shop, clock):
    first = _send(client, "First")
    second = _send(client, "Second", attributionDays=2)
    clock.advance(hours=1)
    _click(app, "ada@shop.com")  # the latest message to Ada is Second's: click First's instead
    ada_first = [m for m in engine.vendor(app).messages if m.to == "ada@shop.com"][0]
    clock.advance(hours=1)
    url = re.findall(r'href="http://localhost:5000(/api/t/c/[^"]+)"', ada_first.html)[0]
    app.test_client().get(url, headers={"User-Agent": PERSON})
    assert _order(client, "ada@shop.com", 10)["attribution"]["campaignId"] == first["_id"]  # its click is later
    clock.advance(hours=1)
    _click(app, "ada@shop.com")  # Second's again, now the last touch
    assert _order(client, "ada@shop.com", 20)["attribution"]["campaignId"] == second["_id"]
    clock.advance(days=3)  # past Second's two days, within First's five
    assert _order(client, "ada@shop.com", 30)["attribution"]["campaignId"] == first["_id"]


def test_bot_clicks_never_earn_revenue(client, app, shop, clock):
    _send(client, "Spring")
    clock.advance(hours=1)
    _click(app, "ada@shop.com", agent=SCANNER)
    assert _order(client, "ada@shop.com", 50)["attribution"] is None


def test_a_campaign_may_count_the_delivery_as_the_touch(client, app, shop, clock):
    spring = _send(client, "Spring", attributeOn="delivery", attributionDays=1)
    clock.advance(hours=3)
    assert _order(client, "cy@shop.com", 40)["attribution"] == {
        "campaignId": spring["_id"], "touch": "delivery", "at": _order_touch(spring["_id"], "cy@shop.com")}
    clock.advance(days=1)
    assert _order(client, "cy@shop.com", 40)["attribution"] is None


def _order_touch(campaign_id, email):
    from dates import iso_utc
    from models import Delivery

    return iso_utc(Delivery.objects.get(campaign_id=campaign_id, email=email).sent_at)


def test_the_same_order_by_every_path_is_attributed_once(client, app, shop, clock):
    spring = _send(client, "Spring")
    clock.advance(hours=1)
    _click(app, "ada@shop.com")
    _click(app, "bob@shop.com")
    clock.advance(hours=1)
    csv_text = "externalId,customerEmail,amount\nA-1,ada@shop.com,100\nB-1,bob@shop.com,25\n"
    assert finished(client, upload(client, csv_text, kind="orders"))["status"] == "completed"
    assert finished(client, upload(client, csv_text, kind="orders"))["status"] == "completed"  # re-imported
    bulk = client.post("/api/orders/bulk", json=[{"customerEmail": "ada@shop.com", "amount": 100, "externalId": "A-1"},
                                                 {"customerEmail": "cy@shop.com", "amount": 5, "externalId": "C-1"}])
    assert bulk.status_code in (200, 207), bulk.get_json()
    _order(client, "ada@shop.com", 100, externalId="A-1")  # and posted again on its own
    assert Order.objects.count() == 3
    attributed = Order.objects(attribution__campaign=ObjectId(spring["_id"]))
    assert sorted(o.external_id for o in attributed) == ["A-1", "B-1"]
    report = client.get(f"/api/campaigns/{spring['_id']}/report").get_json()
    assert (report["revenue"], report["orders"]) == (125.0, 2)
