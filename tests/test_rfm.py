"""RFM: quintile scores computed by the database, named segments that partition every score triple,
customers rescored as their orders arrive, one periodic pass however many beats ask, and the scores
as rule fields."""
import itertools
from datetime import datetime, timedelta

import pytest

from engine import jobs, rfm
from models import Customer
from tests.checks import error_of
from tests.factories import seed_customers

BASE = datetime(2026, 1, 1, 12, 0)


@pytest.fixture
def ctx(app):
    """The app, with its context pushed (the engine's functions are called directly)."""
    with app.app_context():
        yield app


def _shop(n, **overrides):
    """``n`` customers, the i-th (1-based) with i orders, spending 10·i, last ordering on day i."""
    return seed_customers([{"name": f"C{i:03}", "email": f"c{i:03}@shop.com", "numVisits": i,
                            "totalSpend": 10.0 * i, "lastVisitDate": BASE + timedelta(days=i), **overrides}
                           for i in range(1, n + 1)])


def _rfm(email):
    return Customer._get_collection().find_one({"email": email}).get("rfm")


def test_the_segments_partition_every_score_triple():
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        matches = [name for name, boxes in rfm.SEGMENTS for box in boxes
                   if all(low <= value <= high for value, (low, high) in zip((r, f, m), box))]
        assert len(matches) == 1, ((r, f, m), matches)


def test_fifty_customers_fall_in_five_equal_quintiles_and_their_segments(ctx):
    _shop(50)
    seed_customers([{"name": "Never", "email": "never@shop.com"}])
    outcome = rfm.full_pass()
    assert outcome["customers"] == 50
    scores = {doc["email"]: doc["rfm"] for doc in Customer._get_collection().find({"rfm": {"$exists": True}})}
    assert len(scores) == 50 and "never@shop.com" not in scores  # no order, no scores
    for letter in "rfm":
        counts = [sum(1 for s in scores.values() if s[letter] == k) for k in range(1, 6)]
        assert counts == [10, 10, 10, 10, 10], (letter, counts)
    assert scores["c001@shop.com"] == {"r": 1, "f": 1, "m": 1, "segment": "hibernating"}
    assert scores["c025@shop.com"] == {"r": 3, "f": 3, "m": 3, "segment": "need_attention"}
    assert scores["c050@shop.com"] == {"r": 5, "f": 5, "m": 5, "segment": "champions"}
    # scoring customers one by one with the pass's cuts (what an order does) agrees with the pass
    rfm.rescore([doc["_id"] for doc in Customer._get_collection().find({}, {"_id": 1})])
    assert {doc["email"]: doc["rfm"] for doc in Customer._get_collection().find({"rfm": {"$exists": True}})} == scores
    assert rfm.summary()["segments"] == {"champions": 20, "loyal": 0, "cannot_lose": 0, "at_risk": 0,
                                         "hibernating": 20, "need_attention": 10, "new": 0, "promising": 0}


def test_ties_at_the_lowest_value_all_score_one(ctx):
    seed_customers([{"name": f"Once {i}", "email": f"once{i}@shop.com", "numVisits": 1, "totalSpend": 20.0,
                     "lastVisitDate": BASE} for i in range(40)])
    _shop(10, lastVisitDate=BASE)  # 1..10 orders
    rfm.full_pass()
    assert _rfm("once0@shop.com")["f"] == 1 and _rfm("c001@shop.com")["f"] == 1
    assert _rfm("c002@shop.com")["f"] > 1 and _rfm("c010@shop.com")["f"] == 5
    assert {_rfm(f"once{i}@shop.com")["r"] for i in range(40)} == {1}  # all on the same day
    # scoring one customer between passes (an order arrived) reads the tie the same way
    before = _rfm("once0@shop.com")
    rfm.rescore([Customer.objects.get(email="once0@shop.com").pk])
    assert _rfm("once0@shop.com") == before


def test_a_handful_of_customers_still_get_sensible_scores(ctx):
    _shop(3)
    rfm.full_pass()
    money = [_rfm(f"c00{i}@shop.com")["m"] for i in (1, 2, 3)]
    assert money == sorted(money) and money[0] == 1 and money[2] == 5  # the lowest 1, the highest 5


def test_a_first_order_scores_the_customer_at_once_as_new(client, app):
    with app.app_context():
        _shop(50)
        rfm.full_pass()
    fresh = client.post("/api/customers", json={"name": "Fresh", "email": "fresh@shop.com"}).get_json()
    assert client.get(f"/api/customers/{fresh['_id']}").get_json()["rfm"] is None
    order = client.post("/api/orders", json={"customerId": fresh["_id"], "amount": 15})
    assert order.status_code == 201, order.get_json()
    shown = client.get(f"/api/customers/{fresh['_id']}").get_json()["rfm"]
    assert shown == {"r": 5, "f": 1, "m": 1, "segment": "new"}
    # a bulk of orders rescores too: the customer becomes a frequent big spender
    items = [{"customerId": fresh["_id"], "amount": 400} for _ in range(60)]
    assert client.post("/api/orders/bulk", json=items).get_json()["counts"]["created"] == 60
    assert client.get(f"/api/customers/{fresh['_id']}").get_json()["rfm"]["segment"] == "champions"


def test_the_pass_drops_scores_of_customers_who_no_longer_have_orders(ctx):
    _shop(10)
    rfm.full_pass()
    Customer._get_collection().update_one({"email": "c005@shop.com"}, {"$set": {"numVisits": 0}})
    rfm.full_pass()
    assert _rfm("c005@shop.com") is None and _rfm("c006@shop.com") is not None


def test_a_shop_without_orders_has_no_cuts_and_no_scores(client, app):
    seed_customers([{"name": "Ann", "email": "ann@shop.com"}])
    with app.app_context():
        assert rfm.full_pass() == {"customers": 0, "cuts": {}}
    summary = client.get("/api/reports/rfm")
    assert summary.status_code == 200
    assert summary.get_json()["cuts"] == {} and set(summary.get_json()["segments"].values()) == {0}


def test_the_pass_runs_once_per_interval_however_many_sweeps_ask(ctx, clock):
    submitted = []
    jobs.sweep(lambda name, *args: submitted.append(name))
    jobs.sweep(lambda name, *args: submitted.append(name))  # a second beat at the same moment
    assert submitted.count("crm.rfm_pass") == 1
    rfm.full_pass()
    clock.advance(hours=23)
    jobs.sweep(lambda name, *args: submitted.append(name))
    assert submitted.count("crm.rfm_pass") == 1  # not due yet
    clock.advance(hours=2)
    jobs.sweep(lambda name, *args: submitted.append(name))
    jobs.sweep(lambda name, *args: submitted.append(name))
    assert submitted.count("crm.rfm_pass") == 2


def test_a_pass_that_died_runs_again_after_its_lease(ctx, clock):
    assert rfm.claim_due() is True  # taken; its worker dies before finishing
    clock.advance(minutes=30)
    assert rfm.claim_due() is False
    clock.advance(minutes=31)
    assert rfm.claim_due() is True


@pytest.mark.parametrize("rule, expected", [
    ({"field": "rfm.segment", "operator": "=", "value": "champions"}, 20),
    ({"field": "rfm.segment", "operator": "in", "value": "hibernating,need_attention"}, 30),
    ({"field": "rfm.r", "operator": ">=", "value": "4"}, 20),
    ({"field": "rfm.m", "operator": "<", "value": 2}, 10),
    ({"field": "rfm.f", "operator": "exists", "value": "false"}, 1),  # the customer without an order
])
def test_scores_and_segments_are_rule_fields(client, app, rule, expected):
    _shop(50)
    seed_customers([{"name": "Never", "email": "never@shop.com"}])
    with app.app_context():
        rfm.full_pass()
    preview = client.post("/api/segments/preview", json={"rules": [rule]})
    assert preview.status_code == 200 and preview.get_json()["audienceSize"] == expected


def test_scores_are_read_only(client):
    response = client.post("/api/customers", json={"name": "Ann", "email": "ann@shop.com",
                                                   "rfm": {"r": 5, "f": 5, "m": 5, "segment": "champions"}})
    assert response.status_code == 400 and "rfm" in error_of(response)["errors"]
