"""Campaign counts add up, always: ``pending + sent + delivered + failed + cancelled = total`` and
``total + suppressed = audienceSize``, before, during and after pause, cancel, a re-plan and a retry."""
import pytest

import engine
from engine import planner, store
from models import Campaign, Customer, Delivery, Suppression
from models.roles import MARKETER
from tests.factories import make_user, signed_in
from tests.processes import wait_until

AUDIENCE, UNSUBSCRIBED, SUPPRESSED = 30, 5, 2


@pytest.fixture
def shop(make_app):
    app = make_app(VENDOR_RECEIPTS=False, DISPATCH_BATCH_SIZE=4, ENGINE_CONTROL_CHECK_S=0.05,
                   VENDOR_WEBHOOK_SECRET="webhook-secret-for-tests")
    Customer._get_collection().insert_many([
        {"name": f"P{i}", "email": f"p{i}@shop.test", "totalSpend": float(i), "subscribed": i >= UNSUBSCRIBED}
        for i in range(AUDIENCE)])
    Suppression._get_collection().insert_many([{"email": f"p{i}@shop.test"} for i in range(10, 10 + SUPPRESSED)])
    return app, signed_in(app, make_user(MARKETER, email="m@example.com"))


def create(client, **body):
    response = client.post("/api/campaigns", json={"name": "Count", "message": "Hi {{firstName}}", "rules": [],
                                                   **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["_id"]


def stats_of(client, campaign_id):
    """The campaign's stats, checked to add up (and to cover exactly the audience)."""
    stats = client.get(f"/api/campaigns/{campaign_id}").get_json()["stats"]
    parts = stats["pending"] + stats["sent"] + stats["delivered"] + stats["failed"] + stats["cancelled"]
    assert parts == stats["total"], stats
    assert stats["total"] + stats["suppressed"] == stats["audienceSize"] == AUDIENCE, stats
    return stats


def test_counts_add_up_through_pause_resume_cancel(shop):
    app, client = shop
    vendor = engine.vendor(app)
    campaign_id = create(client, messagesPerSecond=20)
    client.post(f"/api/campaigns/{campaign_id}/send")
    wait_until(lambda: len(vendor.sent) >= 3, 10, interval=0.01, what="three sent")
    stats_of(client, campaign_id)  # during
    client.post(f"/api/campaigns/{campaign_id}/pause")
    assert engine.wait_idle(app, timeout=5)
    paused = stats_of(client, campaign_id)
    assert paused["pending"] > 0
    client.post(f"/api/campaigns/{campaign_id}/resume")
    wait_until(lambda: len(vendor.sent) >= 8, 10, interval=0.01, what="eight sent")
    client.post(f"/api/campaigns/{campaign_id}/cancel")
    assert engine.wait_idle(app, timeout=5)
    cancelled = stats_of(client, campaign_id)
    assert cancelled["pending"] == 0 and cancelled["cancelled"] > 0  # none left that will ever go
    assert cancelled["sent"] == len(set(vendor.sent))
    assert cancelled["suppressed"] == UNSUBSCRIBED + SUPPRESSED


def test_a_retry_of_failures_keeps_the_counts(shop, monkeypatch):
    app, client = shop
    vendor = engine.vendor(app)
    original = vendor.send
    refused = set()

    def refuse_some(message):
        if message.to.startswith("p2") and message.to not in refused:  # p20..p29 refused once
            refused.add(message.to)
            from engine.vendors import VendorRejected
            raise VendorRejected("mailbox_full")
        return original(message)

    monkeypatch.setattr(vendor, "send", refuse_some)
    campaign_id = create(client)
    client.post(f"/api/campaigns/{campaign_id}/send")
    assert engine.wait_idle(app, timeout=10)
    first = stats_of(client, campaign_id)
    assert first["failed"] == 10 and first["pending"] == 0
    client.post(f"/api/campaigns/{campaign_id}/retry-failed")
    assert engine.wait_idle(app, timeout=10)
    again = stats_of(client, campaign_id)
    assert again["failed"] == 0 and again["sent"] == AUDIENCE - UNSUBSCRIBED - SUPPRESSED


def test_a_second_planner_racing_the_first_counts_nothing_twice(shop, monkeypatch):
    """The sweep re-plans a campaign whose planning looks stalled while the first planner still runs:
    the two meet between one's read of the cursor and its move. The loser stops; nothing is counted
    twice (before, suppressed members were counted by both: 2,578 for 2,148 unsubscribed)."""
    app, client = shop
    campaign_id = create(client)
    Campaign.objects(pk=campaign_id).update_one(set__status="sending", set__audience_size=None)
    insert = store.insert_records
    raced = []

    def insert_then_race(docs):
        insert(docs)
        if not raced:  # the first planner has written its first batch but not yet moved the cursor
            raced.append(True)
            planner.plan(campaign_id, lambda *_: None)

    monkeypatch.setattr(store, "insert_records", insert_then_race)
    with app.app_context():
        planner.plan(campaign_id, lambda *_: None)
    campaign = Campaign.objects.get(pk=campaign_id)
    assert raced and campaign.planned is not None
    assert campaign.suppressed == UNSUBSCRIBED + SUPPRESSED
    assert Delivery.objects(campaign_id=campaign_id).count() == AUDIENCE - UNSUBSCRIBED - SUPPRESSED
    stats_of(client, campaign_id)


def test_a_member_sent_to_before_a_replan_is_not_also_counted_suppressed(shop, monkeypatch):
    """A batch written, then the campaign paused before its cursor moved: on resume the batch is
    planned again. A member who unsubscribed meanwhile already has a record: still one of the
    recipients, not suppressed as well."""
    app, client = shop
    campaign_id = create(client)
    Campaign.objects(pk=campaign_id).update_one(set__status="sending", set__audience_size=None)
    insert = store.insert_records

    def insert_then_pause(docs):
        insert(docs)
        if docs:  # the first batch with recipients
            Campaign.objects(pk=campaign_id).update_one(set__status="paused")
            Customer.objects(email=docs[0]["email"]).update_one(set__subscribed=False)

    monkeypatch.setattr(store, "insert_records", insert_then_pause)
    with app.app_context():
        planner.plan(campaign_id, lambda *_: None)
    monkeypatch.setattr(store, "insert_records", insert)
    Campaign.objects(pk=campaign_id).update_one(set__status="sending")
    with app.app_context():
        planner.plan(campaign_id, lambda *_: None)
    assert Campaign.objects.get(pk=campaign_id).suppressed == UNSUBSCRIBED + SUPPRESSED
    stats_of(client, campaign_id)
