"""A/B tests: a seeded random test group split evenly into 2–5 variants, a stated rule (probability to be
best, minimum sample) or the marketer's fallback picks the winner, which goes to the rest of the audience
through the engine: nobody ever gets two variants, and a crash mid-way resends nothing."""
import random
import re

import pytest

import engine
from engine import abtest, jobs, runner
from models import Campaign, Delivery
from tests.factories import people_shop
from tests.test_tracking import PERSON

VARIANT_A = '<p>Hi {{firstName}}</p><a href="https://shop.example/a">Shop A</a>'
VARIANT_B = '<p>Hello {{firstName}}</p><a href="https://shop.example/b">Shop B</a><a href="https://shop.example/b2">More</a>'
PEOPLE = 300


def _ab(client, **overrides):
    body = {"name": "Subject test", "subject": "Our sale", "html": VARIANT_A, "rules": [],
            "variants": [{"subject": "Our sale"}, {"subject": "Last chance, {{firstName}}", "html": VARIANT_B}],
            "abTest": {"testPercent": 40, "metric": "clicks", "decideAfterMinutes": 60, "fallback": "first"},
            **overrides}
    response = client.post("/api/campaigns", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def shop(make_app):
    return people_shop(make_app, PEOPLE, AB_MIN_SAMPLE=30, VENDOR_RECEIPTS=False)


def _send(client, campaign):
    assert client.post(f"/api/campaigns/{campaign['_id']}/send").status_code == 202
    assert engine.wait_idle(client.application, 60)
    return client.get(f"/api/campaigns/{campaign['_id']}").get_json()


def _click_variant(app, letter, share, seed=1):
    """People who got ``letter`` click its first link, a ``share`` of them."""
    rng = random.Random(seed)
    by_email = {d.email: d for d in Delivery.objects}
    reader = app.test_client()
    for message in list(engine.vendor(app).messages):
        record = by_email[message.to]
        if record.variant == "AB".index(letter) and rng.random() < share:
            url = re.findall(r'href="http://localhost:5000(/api/t/c/[^"]+)"', message.html)[0]
            assert reader.get(url, headers={"User-Agent": PERSON}).status_code == 302


def test_the_test_group_is_a_seeded_even_split_and_the_rest_waits(shop, clock):
    campaign = _ab(shop)
    assert [v["variant"] for v in campaign["variants"]] == ["A", "B"]
    assert campaign["variants"][1]["links"] == ["https://shop.example/b", "https://shop.example/b2"]
    assert campaign["variants"][0]["html"] == VARIANT_A and "Hello {{firstName}}" in campaign["variants"][1]["text"]
    sent = _send(shop, campaign)
    assert sent["status"] == "sending" and sent["abTest"]["phase"] == "waiting" and sent["abTest"]["winner"] is None
    records = list(Delivery.objects)
    pk = Campaign.objects.get(pk=campaign["_id"]).pk
    expected = {r.customer_id: abtest.variant_of(pk, r.customer_id, 40, 2) for r in records}
    assert all(r.variant == expected[r.customer_id] is not None for r in records)
    shares = [sum(r.variant == v for r in records) for v in (0, 1)]
    assert 90 < len(records) < 150 and min(shares) > 0.35 * len(records)
    stats = sent["stats"]
    assert stats["audienceSize"] == PEOPLE and stats["pending"] == PEOPLE - len(records)  # the rest: waiting
    subjects = {m.to: m.subject for m in engine.vendor(shop.application).messages}
    assert all(subjects[r.email] == "Our sale" for r in records if r.variant == 0)
    assert all(subjects[r.email].startswith("Last chance, Person") for r in records if r.variant == 1)
    with shop.application.app_context():  # the sweep does not count a waiting test as stalled
        clock.advance(minutes=30)
        assert jobs.sweep(runner.submit) == (0, 0, 0)


def test_the_rule_picks_the_winner_which_goes_to_everyone_else_once(shop, clock):
    campaign = _ab(shop)
    _send(shop, campaign)
    clock.advance(minutes=10)
    _click_variant(shop.application, "B", 0.6)
    _click_variant(shop.application, "A", 0.05)
    decided = shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={})
    assert decided.status_code == 200, decided.get_json()
    assert decided.get_json()["abTest"]["winner"] == "B" and decided.get_json()["abTest"]["decidedBy"] == "rule"
    assert engine.wait_idle(shop.application, 60)
    done = shop.get(f"/api/campaigns/{campaign['_id']}").get_json()
    assert done["status"] == "completed" and done["stats"]["handedOff"] == PEOPLE
    records = list(Delivery.objects)
    assert len(records) == len({r.customer_id for r in records}) == PEOPLE  # one each
    vendor = engine.vendor(shop.application)
    assert len(vendor.sent) == len(set(vendor.sent)) == PEOPLE
    pk = Campaign.objects.get(pk=campaign["_id"]).pk
    for record in records:
        test_variant = abtest.variant_of(pk, record.customer_id, 40, 2)
        assert record.variant == (test_variant if test_variant is not None else 1)
    report = shop.get(f"/api/campaigns/{campaign['_id']}/report").get_json()
    a, b = report["variants"]
    assert (a["variant"], b["variant"]) == ("A", "B") and a["handedOff"] + b["handedOff"] < PEOPLE
    tested = Delivery.objects(test_group=True)
    assert (a["handedOff"], b["handedOff"]) == (tested.filter(variant=0).count(), tested.filter(variant=1).count())
    assert b["metric"]["low"] > a["metric"]["high"] and b["probabilityBest"] > 0.95  # the test's comparison
    assert report["handedOff"] == PEOPLE
    assert report["abTest"]["phase"] == "winner"
    assert [link["variant"] for link in report["links"]] == ["A", "B", "B"]


def test_a_named_variant_wins_when_the_marketer_decides(shop):
    campaign = _ab(shop)
    _send(shop, campaign)
    assert shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={"variant": "C"}).status_code == 409
    decided = shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={"variant": "A"}).get_json()
    assert (decided["abTest"]["winner"], decided["abTest"]["decidedBy"]) == ("A", "manual")
    assert shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={}).status_code == 409  # decided already
    assert engine.wait_idle(shop.application, 60)
    assert {r.variant for r in Delivery.objects if r.variant is not None} == {0, 1}
    assert Delivery.objects.count() == PEOPLE


@pytest.mark.parametrize("fallback, winner", [("first", "A"), ("leader", "B"), ("manual", None)])
def test_at_the_deadline_without_a_clear_winner_the_fallback_applies(shop, clock, fallback, winner):
    shop.application.config["AB_MIN_SAMPLE"] = 1000  # more than the test has: the rule cannot be met
    campaign = _ab(shop, abTest={"testPercent": 40, "metric": "clicks", "decideAfterMinutes": 60, "fallback": fallback})
    _send(shop, campaign)
    clock.advance(minutes=10)
    _click_variant(shop.application, "B", 0.3, seed=3)  # B leads
    _click_variant(shop.application, "A", 0.05, seed=4)
    with shop.application.app_context():
        jobs.sweep(runner.submit)  # before the deadline: nothing
        assert Campaign.objects.get(pk=campaign["_id"]).ab_test["phase"] == "waiting"
        clock.advance(minutes=60)
        jobs.sweep(runner.submit)
    assert engine.wait_idle(shop.application, 60)
    state = shop.get(f"/api/campaigns/{campaign['_id']}").get_json()
    assert state["abTest"]["winner"] == winner
    if winner is None:
        assert state["status"] == "sending" and state["abTest"]["phase"] == "waiting"
        assert Campaign.objects.get(pk=campaign["_id"]).ab_test["awaitingDecision"] is True
        decided = shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={}).get_json()
        assert (decided["abTest"]["winner"], decided["abTest"]["decidedBy"]) == ("B", "manual")  # the leader
        assert engine.wait_idle(shop.application, 60)
    else:
        assert state["abTest"]["decidedBy"] == "fallback" and state["status"] == "completed"
    assert Delivery.objects.count() == PEOPLE


class WorkerDied(BaseException):
    """A worker dying mid-send: nothing in the engine handles it (not an Exception)."""


def test_a_worker_killed_during_the_winner_send_resends_nothing(shop, clock, monkeypatch):
    campaign = _ab(shop)
    _send(shop, campaign)
    vendor = engine.vendor(shop.application)
    original, sends = vendor.send, []

    def dies_once(message):
        sends.append(message.to)
        if len(sends) == 50:
            raise WorkerDied()
        return original(message)

    monkeypatch.setattr(vendor, "send", dies_once)
    shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={"variant": "B"})
    assert engine.wait_idle(shop.application, 60)
    assert Campaign.objects.get(pk=campaign["_id"]).status == "sending"  # stranded by the death
    clock.advance(minutes=10)  # past the claim lease: the sweep finds the lost batch
    with shop.application.app_context():
        jobs.sweep(runner.submit)
    assert engine.wait_idle(shop.application, 60)
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"
    records = list(Delivery.objects)
    assert len(records) == len({r.customer_id for r in records}) == PEOPLE
    assert len(vendor.sent) == len(set(vendor.sent)) == PEOPLE  # nobody got a message twice
    assert all(r.status == "SENT" for r in records)


BAD_TESTS = [
    ({"variants": [{"subject": "x"}]}, "variants"),
    ({"variants": [{"subject": f"s{i}"} for i in range(6)]}, "variants"),
    ({"variants": [{"subject": "a"}, {"subject": "b"}], "abTest": None}, "abTest"),
    ({"variants": [{"subject": "a"}, {}]}, "variants"),
    ({"variants": [{"subject": "a"}, {"subject": "{{ oops }}"}]}, "variants"),
    ({"variants": [{"subject": "a"}, {"subject": "a"}]}, "variants"),
    ({"abTest": {"testPercent": 0, "metric": "clicks", "decideAfterMinutes": 60}}, "abTest"),
    ({"abTest": {"testPercent": 101, "metric": "clicks", "decideAfterMinutes": 60}}, "abTest"),
    ({"abTest": {"testPercent": 20, "metric": "ctr", "decideAfterMinutes": 60}}, "abTest"),
    ({"abTest": {"testPercent": 20, "metric": "opens", "decideAfterMinutes": 0}}, "abTest"),
    ({"abTest": {"testPercent": 20, "metric": "opens", "decideAfterMinutes": 1.5}}, "abTest"),
    ({"abTest": {"testPercent": 20, "metric": "opens", "decideAfterMinutes": 60, "fallback": "coin"}}, "abTest"),
]


@pytest.mark.parametrize("change, field", BAD_TESTS)
def test_bad_ab_tests_are_400(client, change, field):
    body = {"name": "T", "text": "x", "rules": [], "variants": [{"subject": "a"}, {"subject": "b"}],
            "abTest": {"testPercent": 20, "metric": "opens", "decideAfterMinutes": 60}, **change}
    if body.get("abTest") is None:
        del body["abTest"]
    response = client.post("/api/campaigns", json=body)
    assert response.status_code == 400, response.get_json()
    assert any(key.split(".")[0].split("[")[0] == field for key in response.get_json()["errors"]), response.get_json()
    assert Campaign.objects.count() == 0


def test_decide_answers_404_and_409_where_there_is_nothing_to_decide(client):
    assert client.post("/api/campaigns/64b7f0000000000000000000/decide", json={}).status_code == 404
    plain = client.post("/api/campaigns", json={"name": "P", "text": "x", "rules": []}).get_json()
    assert client.post(f"/api/campaigns/{plain['_id']}/decide", json={}).status_code == 409
    draft = _ab(client)
    response = client.post(f"/api/campaigns/{draft['_id']}/decide", json={})
    assert response.status_code == 409 and "draft" in response.get_json()["error"]


# --- the rule, on simulated audiences -------------------------------------------------------------------
def _simulated(rates, n, seed):
    rng = random.Random(seed)
    return [{"n": n, "successes": sum(rng.random() < rate for _ in range(n)), "sum": 0.0, "sumsq": 0.0}
            for rate in rates]


def test_b_clicking_at_12_percent_beats_a_at_4_in_at_least_95_percent_of_40_seeded_runs():
    wins = sum(abtest.evaluate(_simulated([0.04, 0.12], 250, seed), "clicks", 100, 0.95, seed)["winner"] == 1
               for seed in range(40))
    assert wins >= 38, wins


def test_with_equal_rates_the_rule_is_rarely_met_so_the_fallback_applies():
    met = sum(abtest.evaluate(_simulated([0.08, 0.08], 250, seed), "clicks", 100, 0.95, seed)["met"]
              for seed in range(40))
    assert met <= 4, met  # about 5% by chance at a 95% threshold


def test_the_minimum_sample_holds_back_an_early_winner():
    arms = [{"n": 50, "successes": 1, "sum": 0, "sumsq": 0}, {"n": 50, "successes": 20, "sum": 0, "sumsq": 0}]
    assert abtest.evaluate(arms, "clicks", 100, 0.95, 1)["met"] is False
    assert abtest.evaluate(arms, "clicks", 50, 0.95, 1)["winner"] == 1


def test_revenue_per_recipient_decides_by_its_mean():
    rng = random.Random(5)

    def arm(mean_order, buy_rate, n=400):
        amounts = [rng.expovariate(1 / mean_order) if rng.random() < buy_rate else 0.0 for _ in range(n)]
        return {"n": n, "successes": 0, "sum": sum(amounts), "sumsq": sum(a * a for a in amounts)}

    result = abtest.evaluate([arm(40, 0.05), arm(40, 0.15)], "revenue", 100, 0.95, 7)
    assert result["winner"] == 1 and result["probabilities"][1] > 0.95
    value, low, high = abtest.estimate(arm(40, 0.1), "revenue")
    assert low < value < high


def test_assignment_is_even_and_reproducible():
    from bson import ObjectId

    campaign, ids = ObjectId(), [ObjectId() for _ in range(20_000)]
    groups = [abtest.variant_of(campaign, i, 30, 3) for i in ids]
    assert groups == [abtest.variant_of(campaign, i, 30, 3) for i in ids]
    assert abs(groups.count(None) / 20_000 - 0.7) < 0.015
    assert all(abs(groups.count(v) / 20_000 - 0.1) < 0.01 for v in range(3))


def test_a_test_planner_still_running_after_the_decision_stops(shop, monkeypatch):
    """The decision resets the cursor while a test planner may still be between batches: its next batch
    must not move the cursor of the winner's planning (or the first customers would never get the winner)."""
    from engine import control, planner, sender
    from models import Customer

    shop.application.config["DISPATCH_BATCH_SIZE"] = 50
    campaign = _ab(shop)
    pk = Campaign.objects.get(pk=campaign["_id"]).pk
    with shop.application.app_context():
        Campaign.objects(pk=pk).update_one(set__status="sending")
        control.start_ab_test(pk)
        stale = Campaign.objects.get(pk=pk)  # the test planner's view, phase "test", cursor at the start
        queued = []
        monkeypatch.setattr(control.runner, "submit", lambda *job: queued.append(job))
        assert shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={"variant": "B"}).status_code == 200
        first = list(Customer._get_collection().find({}, {"email": 1, "subscribed": 1}).sort("_id", 1).limit(50))
        moved = planner._plan_batch(stale, first, lambda *args: sender.deliver_batch(*args), None)
        assert moved is False
        jobs.run_campaign(*queued[0][1:])  # the winner's planning runs now
    assert engine.wait_idle(shop.application, 60)
    records = list(Delivery.objects)
    assert len(records) == len({r.customer_id for r in records}) == PEOPLE
    assert Campaign.objects.get(pk=pk).status == "completed"
