"""Bounces and complaints suppress the address: a hard bounce or a complaint at once, SOFT_BOUNCE_LIMIT
soft bounces within 30 days too, each with its reason; the simulated vendor produces them at their rates."""
import pytest

import engine
from engine.vendors import SimulatedVendor
from models import Delivery, SoftBounce, Suppression
from tests.factories import make_user, seed_customers, signed_in
from tests.test_engine import SECRET, _signed

NOW = "2026-12-01T10:00:00Z"


@pytest.fixture
def shop(make_app):
    app = make_app(VENDOR_WEBHOOK_SECRET=SECRET, VENDOR_RECEIPTS=False)
    seed_customers([{"name": f"P{i}", "email": f"p{i}@shop.com"} for i in range(4)])
    return signed_in(app, make_user())


def _campaign(client):
    created = client.post("/api/campaigns", json={"name": "News", "text": "Hi", "rules": []}).get_json()
    client.post(f"/api/campaigns/{created['_id']}/send")
    assert engine.wait_idle(client.application, 30)
    return created, {d.email: str(d.pk) for d in Delivery.objects(campaign_id=created["_id"])}


def _receipt(delivery, status="FAILED", **extra):
    return {"deliveryId": delivery, "status": status, "timestamp": NOW, **extra}


def test_a_hard_bounce_and_a_complaint_suppress_at_once(shop):
    campaign, ids = _campaign(shop)
    response = _signed(shop, [_receipt(ids["p0@shop.com"], bounce="hard", error="invalid_address"),
                              _receipt(ids["p1@shop.com"], "DELIVERED", complaint=True)])
    assert response.get_json()["applied"] == 2, response.get_json()
    reasons = {s.email: (s.reason, s.note) for s in Suppression.objects}
    assert reasons == {"p0@shop.com": ("bounced", f"hard bounce (campaign {campaign['_id']})"),
                       "p1@shop.com": ("complained", f"complaint (campaign {campaign['_id']})")}
    again = _signed(shop, [_receipt(ids["p1@shop.com"], "DELIVERED", complaint=True)]).get_json()
    assert again["unchanged"] == 1
    report = shop.get(f"/api/campaigns/{campaign['_id']}/report").get_json()
    assert (report["bounced"], report["hardBounced"], report["complaints"], report["delivered"]) == (1, 1, 1, 1)
    second, _ = _campaign(shop)
    assert shop.get(f"/api/campaigns/{second['_id']}").get_json()["stats"]["suppressed"] == 2


def test_soft_bounces_suppress_at_the_limit_each_counted_once(shop):
    for round_ in range(3):
        _, ids = _campaign(shop)
        receipt = _receipt(ids["p2@shop.com"], bounce="soft", error="mailbox_full")
        assert _signed(shop, [receipt, receipt]).get_json()["applied"] == 1  # the same receipt twice: once
        assert _signed(shop, [receipt]).get_json()["unchanged"] == 1
        suppressed = Suppression.objects(email="p2@shop.com").first()
        if round_ < 2:
            assert suppressed is None and SoftBounce.objects(email="p2@shop.com").count() == round_ + 1
    assert (suppressed.reason, suppressed.note) == ("bounced", "3 soft bounces in 30 days")


def test_soft_bounces_older_than_30_days_do_not_count(shop, clock):
    for _ in range(2):
        _, ids = _campaign(shop)
        _signed(shop, [_receipt(ids["p3@shop.com"], bounce="soft")])
    clock.advance(days=31)
    _, ids = _campaign(shop)
    _signed(shop, [_receipt(ids["p3@shop.com"], bounce="soft")])
    assert not Suppression.objects(email="p3@shop.com")


@pytest.mark.parametrize("receipt, field", [
    ({"status": "DELIVERED", "bounce": "hard"}, "bounce"),
    ({"status": "FAILED", "bounce": "maybe"}, "bounce"),
    ({"status": "FAILED", "complaint": True}, "complaint"),
    ({"status": "DELIVERED", "complaint": "yes"}, "complaint"),
])
def test_inconsistent_bounce_receipts_are_invalid(shop, receipt, field):
    _, ids = _campaign(shop)
    body = _signed(shop, [{"deliveryId": ids["p0@shop.com"], "timestamp": NOW, **receipt}]).get_json()
    assert body["invalid"] == 1 and field in body["results"][0]["errors"]
    assert not Suppression.objects


def test_the_simulated_vendor_bounces_and_complains_at_its_rates():
    vendor = SimulatedVendor(0.9, "seed", hard_bounce_rate=0.05, soft_bounce_rate=0.1, complaint_rate=0.02)
    kinds = [vendor.extra(f"<{i}@x>").get("bounce") for i in range(20_000)]
    assert abs(kinds.count("hard") / 20_000 - 0.05) < 0.01 and abs(kinds.count("soft") / 20_000 - 0.1) < 0.01
    plain = SimulatedVendor(0.9, "seed")
    assert all(plain.extra(f"<{i}@x>") == {} for i in range(2000))  # with no rates, outcomes are as before


def test_the_simulated_vendor_reports_what_it_decided():
    from engine.vendors import OutgoingMessage

    class Reporter:
        def __init__(self):
            self.receipts = []

        def report(self, receipt):
            self.receipts.append(receipt)

    reporter = Reporter()
    vendor = SimulatedVendor(1.0, "seed", reporter, hard_bounce_rate=0.2, soft_bounce_rate=0.2, complaint_rate=0.5)
    for i in range(500):
        vendor.send(OutgoingMessage(f"d{i}", f"<{i}@x>", f"p{i}@shop.com", "S", "B"))
    vendor.send(OutgoingMessage("", "<test@x>", "t@shop.com", "S", "B", test=True))  # a test send: no receipt
    receipts = reporter.receipts
    assert len(receipts) == 500
    hard = [r for r in receipts if r.get("bounce") == "hard"]
    soft = [r for r in receipts if r.get("bounce") == "soft"]
    complaints = [r for r in receipts if r.get("complaint")]
    assert 60 < len(hard) < 140 and 60 < len(soft) < 140 and 100 < len(complaints) < 200
    assert all(r["status"] == "FAILED" for r in hard + soft) and all(r["status"] == "DELIVERED" for r in complaints)


def test_a_soft_bounce_reported_twice_by_racing_webhooks_counts_once(shop):
    from engine import receipts

    _, ids = _campaign(shop)
    record = Delivery.objects.get(pk=ids["p2@shop.com"])

    def bounce():
        return [{"email": "p2@shop.com", "at": record.sent_at, "delivery": record.pk, "attempt": record.attempts}]

    with shop.application.app_context():  # two posts of one receipt, each having read the record as SENT
        receipts._suppress({}, bounce(), {}, {})
        receipts._suppress({}, bounce(), {}, {})
    assert SoftBounce.objects(email="p2@shop.com").count() == 1


def test_a_retried_send_that_bounces_again_counts_again(shop):
    campaign, ids = _campaign(shop)
    for _ in range(3):
        assert _signed(shop, [_receipt(ids["p3@shop.com"], bounce="soft")]).get_json()["applied"] == 1
        if Suppression.objects(email="p3@shop.com"):
            break
        assert shop.post(f"/api/campaigns/{campaign['_id']}/retry-failed").status_code == 202
        assert engine.wait_idle(shop.application, 30)
    assert SoftBounce.objects(email="p3@shop.com").count() == 3
    assert Suppression.objects.get(email="p3@shop.com").note == "3 soft bounces in 30 days"
