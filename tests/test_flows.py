"""Lifecycle flows: triggers enter customers, steps run exactly once across crashes, re-runs and
concurrent workers, waits survive restarts, re-entry, the frequency cap and quiet hours, stats and
the timeline."""
import re
import threading
from datetime import datetime, timedelta

import pytest

import engine
import engine.receipts
import engine.tallies
from engine import flows, jobs, runner
from engine.vendors import VendorRejected
from models import CampaignTally, Customer, Delivery, FlowEnrolment, FlowStepRun
from models.base import utcnow
from models.delivery import SENT
from models.roles import MARKETER
from tests.checks import error_of
from tests.factories import make_user, signed_in
from tests.factories import seed_customers

WELCOME = {"type": "send", "subject": "Welcome, {{ firstName | default(\"friend\") }}",
           "text": "Hello {{ firstName }}, thanks for joining."}


def _run(app):
    """What the beat (or the embedded poller) does each round, then wait for its jobs."""
    with app.app_context():
        jobs.sweep(runner.submit)
    assert engine.wait_idle(app, timeout=120)


def _handed(app, email=None):
    """Messages the vendor accepted (one per Message-ID: its idempotency key) and handed-off attempts."""
    with app.app_context():
        vendor = engine.vendor(app)
        messages = [m for m in vendor.messages if email is None or m.to == email]
        return messages


def _flow(client, trigger, steps, **extra):
    created = client.post("/api/flows", json={"name": "Flow", "trigger": trigger, "steps": steps, **extra})
    assert created.status_code == 201, created.get_json()
    ident = created.get_json()["_id"]
    activated = client.post(f"/api/flows/{ident}/activate")
    assert activated.status_code == 200, activated.get_json()
    assert engine.wait_idle(client.application, timeout=60)  # the run activation starts
    return ident


def _customer(client, email, **fields):
    response = client.post("/api/customers", json={"name": fields.pop("name", "Ann Lee"), "email": email, **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["_id"]


# --- definition --------------------------------------------------------------------------------
def test_a_flow_is_saved_as_a_draft_and_shown_as_given(client):
    body = {"name": "Welcome", "trigger": {"type": "customer.created"},
            "steps": [WELCOME, {"type": "wait", "days": 3},
                      {"type": "branch", "rules": [{"field": "totalSpend", "operator": ">", "value": 0}], "else": 4},
                      {"type": "update", "addTags": ["Buyer"]}, {"type": "exit"}],
            "reentryDays": 30}
    created = client.post("/api/flows", json=body)
    assert created.status_code == 201, created.get_json()
    flow = created.get_json()
    assert flow["status"] == "draft" and flow["version"] == 1 and flow["reentryDays"] == 30
    assert flow["steps"][2] == {"type": "branch", "rules": body["steps"][2]["rules"], "logicalOperator": "AND",
                                "then": "next", "else": 4}
    assert flow["steps"][3] == {"type": "update", "addTags": ["buyer"]}
    assert flow["steps"][0]["subject"] == WELCOME["subject"] and flow["steps"][0]["text"] == WELCOME["text"]
    assert client.get(f"/api/flows/{flow['_id']}").get_json()["steps"] == flow["steps"]
    listed = client.get("/api/flows?status=draft").get_json()
    assert listed["total"] == 1 and listed["items"][0]["_id"] == flow["_id"]


@pytest.mark.parametrize("change, field", [
    ({"trigger": {"type": "nope"}}, "trigger"),
    ({"trigger": {"type": "event"}}, "trigger"),                                        # no name
    ({"trigger": {"type": "inactive", "days": 0}}, "trigger"),
    ({"trigger": {"type": "segment.entered", "segmentId": "64b7f0000000000000000000"}}, "trigger.segmentId"),
    ({"trigger": {"type": "anniversary", "attribute": "birthday"}}, "trigger"),          # not declared
    ({"trigger": {"type": "customer.created", "rules": [{"field": "$where", "operator": "=", "value": 1}]}}, "trigger"),
    ({"trigger": {"type": "order.created", "orderRules": [{"field": "totalSpend", "operator": ">", "value": 1}]}},
     "trigger"),
    ({"steps": []}, "steps"),
    ({"steps": [{"type": "teleport"}]}, "steps"),
    ({"steps": [{"type": {}}]}, "steps"),                                                 # unhashable: was a 500
    ({"trigger": {"type": ["event"]}}, "trigger"),
    ({"steps": [{"type": "wait"}]}, "steps"),                                             # no duration
    ({"steps": [{"type": "wait", "days": 400}]}, "steps"),
    ({"steps": [{"type": "wait", "days": 1, "until": {"time": "09:00"}}]}, "steps"),
    ({"steps": [{"type": "wait", "until": {"time": "25:00"}}]}, "steps"),
    ({"steps": [{"type": "send", "text": "no subject"}]}, "steps"),
    ({"steps": [{"type": "send", "subject": "Hi {{ nope }}", "text": "x"}]}, "steps[0].subject"),
    ({"steps": [{"type": "branch", "rules": [], "then": 0}, {"type": "exit"}]}, "steps"),  # backwards
    ({"steps": [{"type": "branch", "rules": [], "else": 7}, {"type": "exit"}]}, "steps"),  # past the end
    ({"steps": [{"type": "update"}]}, "steps"),
    ({"steps": [{"type": "update", "attributes": {"undeclared": 1}}]}, "steps"),
    ({"steps": [{"type": "exit", "extra": 1}]}, "steps"),
    ({"steps": [{"type": "send", "templateId": "64b7f0000000000000000000"}]}, "steps[0].templateId"),
    ({"steps": [{"type": "send", "subject": "Hi", "text": "x", "tracking": {"opens": "no"}}]}, "steps"),
    ({"steps": [{"type": "send", "subject": "Hi", "text": "x", "tracking": {"pixels": True}}]}, "steps"),
    ({"steps": [{"type": "send", "subject": "Hi", "text": "x", "tracking": True}]}, "steps"),
    ({"reentryDays": 0}, "reentryDays"),
    ({"name": ""}, "name"),
    ({"trigger": "customer.created"}, "trigger"),
    ({"steps": {"type": "exit"}}, "steps"),
])
def test_bad_flows_are_refused_naming_the_problem(client, change, field):
    body = {"name": "Flow", "trigger": {"type": "customer.created"}, "steps": [{"type": "exit"}], **change}
    response = client.post("/api/flows", json=body)
    assert response.status_code == 400, response.get_json()
    errors = error_of(response)["errors"]
    assert any(key == field or key.startswith((field + ".", field + "[")) for key in errors), errors
    assert client.get("/api/flows").get_json()["total"] == 0


def test_lifecycle_moves_only_along_its_arrows(client):
    ident = client.post("/api/flows", json={"name": "F", "trigger": {"type": "customer.created"},
                                            "steps": [{"type": "exit"}]}).get_json()["_id"]
    assert client.post(f"/api/flows/{ident}/pause").status_code == 409          # a draft is not running
    assert client.post(f"/api/flows/{ident}/activate").get_json()["status"] == "active"
    assert client.post(f"/api/flows/{ident}/activate").status_code == 409
    assert client.delete(f"/api/flows/{ident}").status_code == 409               # it ran: archive it
    assert client.post(f"/api/flows/{ident}/pause").get_json()["status"] == "paused"
    assert client.post(f"/api/flows/{ident}/activate").get_json()["status"] == "active"
    assert client.post(f"/api/flows/{ident}/archive").get_json()["status"] == "archived"
    for action in ("activate", "pause", "archive"):
        assert client.post(f"/api/flows/{ident}/{action}").status_code == 409
    assert client.patch(f"/api/flows/{ident}", json={"name": "G"}).status_code == 409
    assert client.post("/api/flows/64b7f0000000000000000000/activate").status_code == 404
    draft = client.post("/api/flows", json={"name": "D", "trigger": {"type": "customer.created"},
                                            "steps": [{"type": "exit"}]}).get_json()["_id"]
    assert client.delete(f"/api/flows/{draft}").status_code == 204
    assert client.get(f"/api/flows/{draft}").status_code == 404


# --- entering and sending -----------------------------------------------------------------------
def test_a_new_customer_gets_the_welcome_message_once(client, app):
    ident = _flow(client, {"type": "customer.created"}, [WELCOME])
    _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    _run(app)
    sent = _handed(app, "ann@shop.com")
    assert [m.subject for m in sent] == ["Welcome, Ann"]
    record = Delivery.objects.get(email="ann@shop.com")
    assert record.status in (SENT, "DELIVERED") and str(record.flow_id) == ident and record.flow_step == 0
    enrolment = FlowEnrolment.objects.get()
    assert enrolment.status == "completed" and enrolment.number == 1
    stats = client.get(f"/api/flows/{ident}/stats").get_json()
    assert stats["entered"] == 1 and stats["completed"] == 1 and stats["sent"] == 1
    assert stats["steps"][0]["outcomes"] == {"sent": 1}


def test_a_three_day_wait_fires_on_day_three_and_survives_a_worker_restart(client, app, clock, make_app):
    _flow(client, {"type": "customer.created"}, [{"type": "wait", "days": 3}, WELCOME])
    start = utcnow()
    _customer(client, "ann@shop.com")
    _run(app)
    assert FlowEnrolment.objects.get().status == "running" and not _handed(app)
    clock.travel_to(start + timedelta(days=3) - timedelta(minutes=5))
    _run(app)
    assert not _handed(app), "sent before the three days were up"
    # the worker dies: a new process (a new app on the same database) picks the enrolment up
    engine.stop(app, timeout=30)
    clock.travel_to(start + timedelta(days=3, minutes=1))
    with app.app_context():
        assert flows.has_due()
        assert flows.run_due() == 1
    assert [m.to for m in _handed(app)] == ["ann@shop.com"]
    assert FlowEnrolment.objects.get().status == "completed"


def test_a_worker_that_dies_holding_an_enrolment_leaves_it_to_another_after_the_lease(client, app, clock):
    _flow(client, {"type": "customer.created"}, [WELCOME])
    seed_customers([{"name": "Bo Li", "email": "bo@shop.com"}])
    pk = Customer.objects.get().pk
    with app.app_context():
        flow = flows.Flow.objects.get()
        assert flows.enter(flow, [(pk, None, None)]) == 1
        dead = flows.claim("dead-worker", utcnow(), 10)  # claimed, then the worker died
        assert len(dead) == 1
        assert flows.run_due() == 0, "a live claim is not taken"
        clock.advance(seconds=app.config["DISPATCH_CLAIM_LEASE_S"] + 1)
        assert flows.run_due() == 1
    assert len(_handed(app, "bo@shop.com")) == 1


def test_a_send_run_again_after_a_crash_hands_off_the_same_message_id_and_is_recorded_once(client, app, clock):
    """The worker handed the message off and died before recording it: the re-run sends the same
    Message-ID (the vendor keeps one) and the step's outcome and record are written once."""
    ident = _flow(client, {"type": "customer.created"}, [WELCOME, {"type": "wait", "days": 1}])
    seed_customers([{"name": "Cy Ko", "email": "cy@shop.com"}])
    pk = Customer.objects.get().pk
    with app.app_context():
        flow = flows.Flow.objects.get()
        flows.enter(flow, [(pk, None, None)])
        original = flows._hand_off
        crashed = []

        def crash_after_hand_off(runner_, doc, step, record, customer):
            original(runner_, doc, step, record, customer)  # handed off, then the worker dies
            crashed.append(record["_id"])
            raise RuntimeError("worker died")

        flows._hand_off = crash_after_hand_off
        try:
            assert flows.run_due() == 1
        finally:
            flows._hand_off = original
        failed = FlowEnrolment.objects.get()
        assert failed.last_error == "RuntimeError: worker died" and failed.claimed_by is None
        assert flows.run_due() == 0, "it runs again later, not in a hot loop"
        clock.advance(minutes=5, seconds=1)
        assert flows.run_due() == 1
    vendor_ids = [m.message_id for m in _handed(app, "cy@shop.com")]
    assert len(vendor_ids) == 2 and len(set(vendor_ids)) == 1, "the same Message-ID both times"
    with app.app_context():
        assert len(engine.vendor(app).accepted) == 1
    assert Delivery.objects(email="cy@shop.com").count() == 1
    assert client.get(f"/api/flows/{ident}/stats").get_json()["steps"][0]["outcomes"] == {"sent": 1}


def test_a_refused_send_counts_failed_and_a_later_bounce_keeps_a_handed_off_one_sent(client, app, monkeypatch):
    """A send step's outcome is what happened at the hand-off: the vendor refused it (failed), or took it
    (sent, whatever receipts later say of its delivery); the stats and the timeline agree."""
    ident = _flow(client, {"type": "customer.created"}, [WELCOME])
    with app.app_context():
        vendor = engine.vendor(app)
    original = vendor.send

    def refuse_bo(message):
        if message.to == "bo@shop.com":
            raise VendorRejected("mailbox_full")
        return original(message)

    monkeypatch.setattr(vendor, "send", refuse_bo)
    ann, bo = _customer(client, "ann@shop.com"), _customer(client, "bo@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    with app.app_context():
        record = Delivery.objects.get(email="ann@shop.com")
        engine.receipts.apply([(0, {"delivery_id": record.pk, "status": "FAILED", "error": "invalid_address",
                                    "bounce": "hard", "timestamp": utcnow()})])
        assert Delivery.objects.get(email="ann@shop.com").status == "FAILED"
    stats = client.get(f"/api/flows/{ident}/stats").get_json()
    assert stats["sent"] == 1 and stats["steps"][0]["outcomes"] == {"sent": 1, "failed": 1}
    assert stats["steps"][0]["reached"] == 2 and stats["completed"] == 2
    for customer, outcome in ((ann, "sent"), (bo, "failed")):
        (item,) = client.get(f"/api/customers/{customer}/timeline?types=flow.step").get_json()["items"]
        assert (item["stepType"], item["outcome"], item["step"], item["flowId"]) == ("send", outcome, 0, ident)
        with app.app_context():
            assert item["deliveryId"] == str(Delivery.objects.get(customer_id=customer).pk)


def test_two_workers_at_once_send_each_customer_one_message(client, app):
    ident = _flow(client, {"type": "customer.created"}, [WELCOME, {"type": "update", "addTags": ["welcomed"]}])
    seed_customers([{"name": f"P{i}", "email": f"p{i}@shop.com"} for i in range(300)])
    with app.app_context():
        flow = flows.Flow.objects.get()
        flows.enter(flow, [(c.pk, None, None) for c in Customer.objects.only("id")])
    errors = []

    def worker():
        try:
            with app.app_context():
                flows.run_due(limit=25)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    handed = _handed(app)
    assert len(handed) == 300 and len({m.to for m in handed}) == 300
    assert Delivery.objects.count() == 300 and FlowStepRun.objects.count() == 300  # the update steps'
    steps = client.get(f"/api/flows/{ident}/stats").get_json()["steps"]
    assert [step["outcomes"] for step in steps] == [{"sent": 300}, {"updated": 300}]
    assert FlowEnrolment.objects(status="completed").count() == 300
    assert Customer.objects(tags="welcomed").count() == 300


# --- triggers and re-entry -----------------------------------------------------------------------
def test_an_order_enters_once_or_again_after_the_reentry_period(client, app, clock):
    once = _flow(client, {"type": "order.created", "orderRules": [{"field": "amount", "operator": ">=", "value": 50}]},
                 [{"type": "send", "subject": "Thanks", "text": "Thanks for your order"}])
    again = _flow(client, {"type": "order.created"}, [{"type": "exit"}], reentryDays=7)
    ann = _customer(client, "ann@shop.com")
    for amount in (20, 80, 90):  # 20 is below the first flow's orderRules
        assert client.post("/api/orders", json={"customerId": ann, "amount": amount}).status_code == 201
    assert engine.wait_idle(app, timeout=60)
    assert FlowEnrolment.objects(flow_id=once).count() == 1
    assert FlowEnrolment.objects(flow_id=once).get().context["amount"] == 80
    assert FlowEnrolment.objects(flow_id=again).count() == 1
    clock.advance(days=7, minutes=1)
    assert client.post("/api/orders", json={"customerId": ann, "amount": 10}).status_code == 201
    assert engine.wait_idle(app, timeout=60)
    assert FlowEnrolment.objects(flow_id=again).count() == 2 and FlowEnrolment.objects(flow_id=once).count() == 1
    _run(app)
    assert [m.subject for m in _handed(app, "ann@shop.com")] == ["Thanks"]


def test_two_triggers_racing_enter_a_customer_once(client, app, monkeypatch):
    """Both read "no entry yet" before either writes (the race, made certain): one document results."""
    _flow(client, {"type": "event", "name": "cart.abandoned"}, [{"type": "wait", "days": 1}])
    seed_customers([{"name": "Di", "email": "di@shop.com"}])
    pk = Customer.objects.get().pk
    monkeypatch.setattr(flows, "_latest", lambda flow_pk, customer_pks: {})
    with app.app_context():
        flow = flows.Flow.objects.get()
        results = [flows.enter(flow, [(pk, None, None)]) for _ in range(3)]
        results.append(flows.enter(flow, [(pk, None, None), (pk, "again", None)]))
    assert results == [1, 0, 0, 0] and FlowEnrolment.objects.count() == 1


def test_a_named_event_enters_its_flows_and_others_do_not(client, app):
    abandoned = _flow(client, {"type": "event", "name": "cart.abandoned",
                               "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]},
                      [{"type": "send", "subject": "Your cart", "text": "Come back"}])
    ann = _customer(client, "ann@shop.com", tags=["vip"])
    _customer(client, "bo@shop.com")
    for email, name in (("ann@shop.com", "cart.abandoned"), ("bo@shop.com", "cart.abandoned"),
                        ("ann@shop.com", "trial.started")):
        assert client.post("/api/events", json={"name": name, "email": email}).status_code == 201
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert [str(e.customer_id) for e in FlowEnrolment.objects(flow_id=abandoned)] == [ann]
    assert [m.to for m in _handed(app)] == ["ann@shop.com"]


def test_a_batch_of_customers_far_apart_is_read_whole(client, app, monkeypatch):
    """One batch holds the first and the last of 30 customers (28 others between them): each is sent to,
    with their own data (the batch reads a run of ids at once and the others by id)."""
    _flow(client, {"type": "event", "name": "cart.abandoned"},
          [{"type": "send", "subject": "Your cart, {{ firstName }}", "text": "Come back"}])
    monkeypatch.setattr(flows, "kick", lambda entered=1: None)  # entries wait for the run below: one batch
    seed_customers([{"name": f"Person{i} Lee", "email": f"p{i}@shop.com"} for i in range(30)])
    for email in ("p0@shop.com", "p29@shop.com", "p1@shop.com"):
        assert client.post("/api/events", json={"name": "cart.abandoned", "email": email}).status_code == 201
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert sorted((m.to, m.subject) for m in _handed(app)) == [
        ("p0@shop.com", "Your cart, Person0"), ("p1@shop.com", "Your cart, Person1"),
        ("p29@shop.com", "Your cart, Person29")]


def test_branch_and_update_steps_follow_the_customer(client, app):
    steps = [{"type": "branch", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}],
              "then": "next", "else": 3},
             {"type": "update", "addTags": ["gold"], "removeTags": ["vip"]},
             {"type": "exit"},
             {"type": "update", "addTags": ["regular"]}]
    ident = _flow(client, {"type": "customer.created"}, steps)
    _customer(client, "vip@shop.com", tags=["vip"])
    _customer(client, "reg@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert Customer.objects.get(email="vip@shop.com").tags == ["gold"]
    assert Customer.objects.get(email="reg@shop.com").tags == ["regular"]
    stats = client.get(f"/api/flows/{ident}/stats").get_json()
    assert stats["steps"][0]["outcomes"] == {"yes": 1, "no": 1}
    assert stats["exited"] == 1 and stats["completed"] == 1


def test_entering_a_segment_by_a_change_or_by_the_sweep(client, app, clock):
    segment = client.post("/api/segments", json={"name": "Big", "rules": [
        {"field": "totalSpend", "operator": ">", "value": 100}]}).get_json()["_id"]
    seed_customers([{"name": "Old", "email": "old@shop.com", "totalSpend": 500}])  # a member already
    ident = _flow(client, {"type": "segment.entered", "segmentId": segment}, [{"type": "wait", "days": 1}])
    ann = _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    assert FlowEnrolment.objects(flow_id=ident).count() == 0
    assert client.post("/api/orders", json={"customerId": ann, "amount": 150}).status_code == 201
    assert engine.wait_idle(app, timeout=60)
    assert [str(e.customer_id) for e in FlowEnrolment.objects(flow_id=ident)] == [ann]
    _run(app)  # the sweep takes the member who was there before the flow
    assert FlowEnrolment.objects(flow_id=ident).count() == 2
    clock.advance(seconds=app.config["FLOW_SWEEP_INTERVAL_S"] + 1)
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 2, "once, ever (no reentryDays)"


def test_win_back_enters_once_per_lapse(client, app, clock):
    ident = _flow(client, {"type": "inactive", "days": 90}, [{"type": "exit"}])
    ann = _customer(client, "ann@shop.com")
    assert client.post("/api/orders", json={"customerId": ann, "amount": 30}).status_code == 201
    sweep_every = app.config["FLOW_SWEEP_INTERVAL_S"] + 1
    clock.advance(days=89)
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 0
    clock.advance(days=1, minutes=1)
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 1
    clock.advance(seconds=sweep_every)
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 1, "the same lapse enters once"
    assert client.post("/api/orders", json={"customerId": ann, "amount": 30}).status_code == 201
    clock.advance(days=91)
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 2, "a new order, a new lapse"


def test_a_birthday_flow_enters_on_the_day_each_year(client, app, clock):
    assert client.post("/api/attributes", json={"key": "birthday", "type": "date"}).status_code == 201
    clock.travel_to(datetime(2027, 5, 31, 12, 0))
    ident = _flow(client, {"type": "anniversary", "attribute": "birthday"}, [{"type": "exit"}])
    _customer(client, "may@shop.com", attributes={"birthday": "1990-06-01"})
    _customer(client, "leap@shop.com", attributes={"birthday": "1992-02-29"})
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 0
    clock.travel_to(datetime(2027, 6, 1, 0, 30))
    _run(app)
    assert [e.key for e in FlowEnrolment.objects(flow_id=ident)] == ["2027"]
    clock.travel_to(datetime(2028, 2, 28, 12, 0))
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 1, "2028 is a leap year: the 29th is her day"
    clock.travel_to(datetime(2028, 2, 29, 12, 0))
    _run(app)
    assert FlowEnrolment.objects(flow_id=ident).count() == 2
    clock.travel_to(datetime(2028, 6, 1, 8, 0))
    _run(app)
    _run(app)
    assert sorted(e.key for e in FlowEnrolment.objects(flow_id=ident)) == ["2027", "2028", "2028"]


def test_a_wait_until_monday_nine_in_the_customers_own_zone(client, app, clock):
    clock.travel_to(datetime(2027, 3, 4, 12, 0))  # a Thursday
    _flow(client, {"type": "customer.created"},
          [{"type": "wait", "until": {"time": "09:00", "weekdays": ["monday"]}}, WELCOME])
    _customer(client, "tokyo@shop.com", timezone="Asia/Tokyo")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert FlowEnrolment.objects.get().wait["until"] == datetime(2027, 3, 8, 0, 0)  # Monday 09:00 in Tokyo
    clock.travel_to(datetime(2027, 3, 7, 23, 59))
    _run(app)
    assert not _handed(app)
    clock.travel_to(datetime(2027, 3, 8, 0, 1))
    _run(app)
    assert [m.to for m in _handed(app)] == ["tokyo@shop.com"]


# --- policy: frequency cap, quiet hours ----------------------------------------------------------
def test_the_frequency_cap_counts_campaigns_and_flows_and_spares_transactional_flows(make_app, clock):
    app = make_app(FREQUENCY_CAP="1/24h")
    client = signed_in(app, make_user(MARKETER, email="cap@example.com"))
    marketing = _flow(client, {"type": "event", "name": "browse"}, [{"type": "send", "subject": "Deals", "text": "x"}])
    receipts = _flow(client, {"type": "event", "name": "paid"}, [{"type": "send", "subject": "Receipt", "text": "x"}],
                     transactional=True)
    _customer(client, "ann@shop.com")
    campaign = client.post("/api/campaigns", json={"name": "News", "text": "hello", "rules": []}).get_json()["_id"]
    assert client.post(f"/api/campaigns/{campaign}/send").status_code == 202
    assert engine.wait_idle(app, timeout=60)
    for name in ("browse", "paid"):
        assert client.post("/api/events", json={"name": name, "email": "ann@shop.com"}).status_code == 201
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert sorted(m.subject for m in _handed(app)) == ["News", "Receipt"]
    assert client.get(f"/api/flows/{marketing}/stats").get_json()["capped"] == 1
    assert client.get(f"/api/flows/{receipts}/stats").get_json()["sent"] == 1
    _customer(client, "bo@shop.com")
    second = client.post("/api/campaigns", json={"name": "More news", "text": "again", "rules": []}).get_json()["_id"]
    assert client.post(f"/api/campaigns/{second}/send").status_code == 202
    assert engine.wait_idle(app, timeout=60)
    capped = Delivery.objects.get(campaign_id=second, email="ann@shop.com")
    assert capped.status == "FAILED" and capped.error == "frequency cap: 1 messages in 24 h"
    assert [m.to for m in _handed(app) if m.subject == "More news"] == ["bo@shop.com"]
    clock.advance(hours=24, minutes=1)
    client.post("/api/events", json={"name": "browse", "email": "ann@shop.com"})
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert FlowEnrolment.objects(flow_id=marketing).count() == 1, "no reentryDays: once"


def test_quiet_hours_defer_a_flow_message_to_the_morning_across_the_clock_change(make_app, clock):
    app = make_app(QUIET_HOURS="21:00-08:00")
    client = signed_in(app, make_user(MARKETER, email="quiet@example.com"))
    clock.travel_to(datetime(2026, 3, 8, 3, 0))  # 22:00 EST on the 7th; clocks go forward at 02:00
    _flow(client, {"type": "customer.created"}, [WELCOME])
    _customer(client, "ny@shop.com", timezone="America/New_York")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    assert not _handed(app)
    enrolment = FlowEnrolment.objects.get()
    assert enrolment.due_at == datetime(2026, 3, 8, 12, 0)  # 08:00 EDT (UTC-4 after the change)
    clock.travel_to(datetime(2026, 3, 8, 11, 59))
    _run(app)
    assert not _handed(app)
    clock.travel_to(datetime(2026, 3, 8, 12, 0, 30))
    _run(app)
    assert [m.to for m in _handed(app)] == ["ny@shop.com"]


def test_one_batch_of_customers_in_and_out_of_their_quiet_hours_each_gets_their_own_move(make_app, clock):
    """Customers alternating between New York (22:00: quiet) and Kolkata (08:30: allowed) run in one
    batch: those in Kolkata are sent now, those in New York wait for their morning and are sent then,
    each once: no enrolment takes another's move."""
    app = make_app(QUIET_HOURS="21:00-08:00")
    client = signed_in(app, make_user(MARKETER, email="quiet@example.com"))
    clock.travel_to(datetime(2026, 3, 5, 3, 0))  # 22:00 in New York (EST), 08:30 in Kolkata
    _flow(client, {"type": "customer.created"}, [WELCOME])
    zones = ["America/New_York", "Asia/Kolkata"] * 6
    seed_customers([{"name": f"Z{i}", "email": f"z{i:02d}@shop.com", "timezone": zone} for i, zone in enumerate(zones)])
    with app.app_context():
        flows.enter(flows.Flow.objects.get(), [(c.pk, None, None) for c in Customer.objects.only("id")])
        assert flows.run_due(limit=50) == 12
    kolkata = {f"z{i:02d}@shop.com" for i in range(1, 12, 2)}
    assert {m.to for m in _handed(app)} == kolkata and len(_handed(app)) == 6
    assert FlowEnrolment.objects(status="running", due_at=datetime(2026, 3, 5, 13, 0)).count() == 6  # 08:00 EST
    clock.travel_to(datetime(2026, 3, 5, 13, 0, 30))
    with app.app_context():
        assert flows.run_due() == 6
    handed = [m.to for m in _handed(app)]
    assert len(handed) == 12 and set(handed) == {f"z{i:02d}@shop.com" for i in range(12)}
    assert FlowEnrolment.objects(status="completed").count() == 12


# --- state changes, editing, history ---------------------------------------------------------------
def test_a_paused_flow_holds_everyone_and_archiving_lets_them_out(client, app, clock):
    ident = _flow(client, {"type": "customer.created"}, [{"type": "wait", "hours": 1}, WELCOME])
    _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    assert client.post(f"/api/flows/{ident}/pause").status_code == 200
    _customer(client, "bo@shop.com")
    clock.advance(hours=2)
    _run(app)
    _flow(client, {"type": "event", "name": "other"}, [{"type": "exit"}])  # another flow is active
    with app.app_context():
        assert flows.run_due() == 0  # a worker asked to run (a task queued before the pause) takes nobody
    assert not _handed(app) and FlowEnrolment.objects.count() == 1, "paused: nobody enters, nobody moves"
    assert client.post(f"/api/flows/{ident}/activate").status_code == 200
    _run(app)
    assert [m.to for m in _handed(app)] == ["ann@shop.com"]
    _customer(client, "cy@shop.com")
    assert engine.wait_idle(app, timeout=60)
    assert client.post(f"/api/flows/{ident}/archive").status_code == 200
    assert FlowEnrolment.objects.get(customer_id=Customer.objects.get(email="cy@shop.com").pk).status == "exited"


def test_editing_an_active_flow_changes_new_entries_only(client, app, clock):
    ident = _flow(client, {"type": "customer.created"},
                  [{"type": "wait", "hours": 1}, {"type": "send", "subject": "Old", "text": "x"}])
    _customer(client, "early@shop.com")
    patched = client.patch(f"/api/flows/{ident}", json={"steps": [{"type": "send", "subject": "New", "text": "y"}]})
    assert patched.status_code == 200 and patched.get_json()["version"] == 2
    _customer(client, "late@shop.com")
    assert engine.wait_idle(app, timeout=60)
    clock.advance(hours=1, minutes=1)
    _run(app)
    assert {m.to: m.subject for m in _handed(app)} == {"early@shop.com": "Old", "late@shop.com": "New"}


def test_the_timeline_shows_flow_steps_and_flow_messages(client, app):
    ident = _flow(client, {"type": "customer.created"}, [WELCOME, {"type": "update", "addTags": ["x"]}])
    ann = _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    page = client.get(f"/api/customers/{ann}/timeline?types=flow.step,message").get_json()
    kinds = sorted((item["type"], item.get("stepType")) for item in page["items"])
    assert kinds == [("flow.step", "send"), ("flow.step", "update"), ("message", None)]
    message = next(item for item in page["items"] if item["type"] == "message")
    assert message["flowId"] == ident and message["step"] == 0 and "campaignId" not in message
    assert {item["outcome"] for item in page["items"] if item["type"] == "flow.step"} == {"sent", "updated"}


TRACKED = {"type": "send", "subject": "Hi", "html": (
    '<p><a href="https://shop.example/sale?who={{email}}">Sale</a> <a href="https://shop.example/new">New</a> '
    '<a href="{{unsubscribeUrl}}">Unsubscribe</a></p>')}
PERSON = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
          "Safari/605.1.15")


def _tracking_urls(html):
    return [url.split("localhost:5000")[1] for url in re.findall(r'(?:href|src)="([^"]+)"', html) if "/api/t/" in url]


def test_a_flow_message_is_tracked_per_version_and_counted_in_its_stats_and_the_timeline(client, app, anon, clock):
    ident = _flow(client, {"type": "customer.created"}, [TRACKED])
    ann = _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    (message,) = _handed(app, "ann@shop.com")
    sale, new, pixel = _tracking_urls(message.html)
    assert "/api/t/c/" in sale and "/api/t/c/" in new and "/api/t/o/" in pixel
    assert "/api/unsubscribe" in message.html  # the unsubscribe link is never rewritten
    # the flow is edited (version 2, other links): the message already sent keeps its own links
    changed = {**TRACKED, "html": '<a href="https://elsewhere.example/">x</a>'}
    assert client.patch(f"/api/flows/{ident}", json={"steps": [changed]}).get_json()["version"] == 2
    clock.advance(hours=1)
    clicked = anon.get(sale, headers={"User-Agent": PERSON})
    assert clicked.status_code == 302 and clicked.headers["Location"] == "https://shop.example/sale?who=ann%40shop.com"
    assert anon.get(pixel, headers={"User-Agent": PERSON}).status_code == 200
    assert anon.get(sale[:-2] + ("AA" if sale[-2:] != "AA" else "BB")).status_code == 404  # tampered
    stats = client.get(f"/api/flows/{ident}/stats").get_json()
    assert (stats["opened"], stats["clicked"]) == (1, 1)
    assert (stats["steps"][0]["opened"], stats["steps"][0]["clicked"]) == (1, 1)
    page = client.get(f"/api/customers/{ann}/timeline?types=open,click").get_json()
    assert sorted(item["type"] for item in page["items"]) == ["click", "open"]
    assert all(item["flowId"] == ident and item["step"] == 0 and "campaignId" not in item for item in page["items"])
    with app.app_context():  # its receipt, then a report's fold of everything due
        engine.receipts.apply([(0, {"delivery_id": Delivery.objects.get(email="ann@shop.com").pk,
                                    "status": "DELIVERED", "timestamp": utcnow()})])
        engine.tallies.fold()
    assert Delivery.objects.get(email="ann@shop.com").status == "DELIVERED"
    assert CampaignTally.objects.count() == 0  # a flow's messages are counted by its stats, never as campaigns


def test_a_flow_message_can_be_sent_untracked(client, app):
    _flow(client, {"type": "customer.created"}, [{**TRACKED, "tracking": {"opens": False, "clicks": False}}])
    _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    (message,) = _handed(app, "ann@shop.com")
    assert "/api/t/" not in message.html and 'href="https://shop.example/new"' in message.html


def test_a_flow_message_whose_record_was_erased_records_nothing(client, app, anon, clock):
    _flow(client, {"type": "customer.created"}, [TRACKED])
    _customer(client, "ann@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    (message,) = _handed(app, "ann@shop.com")
    sale, _, pixel = _tracking_urls(message.html)
    with app.app_context():
        Delivery.objects(email="ann@shop.com").delete()
    clock.advance(hours=1)
    assert anon.get(sale, headers={"User-Agent": PERSON}).status_code == 404
    assert anon.get(pixel, headers={"User-Agent": PERSON}).status_code == 404


def test_converted_counts_an_order_after_entering(client, app, clock):
    ident = _flow(client, {"type": "customer.created"}, [WELCOME])
    ann = _customer(client, "ann@shop.com")
    _customer(client, "bo@shop.com")
    assert engine.wait_idle(app, timeout=60)
    clock.advance(days=2)
    assert client.post("/api/orders", json={"customerId": ann, "amount": 42.5}).status_code == 201
    assert client.post("/api/orders", json={"customerId": ann, "amount": 10}).status_code == 201
    stats = client.get(f"/api/flows/{ident}/stats").get_json()
    assert stats["converted"] == 1 and stats["revenue"] == 42.5


def test_a_deleted_customer_leaves_the_flow_and_its_history(client, app, clock):
    _flow(client, {"type": "customer.created"}, [{"type": "wait", "hours": 1}, WELCOME])
    ann = _customer(client, "ann@shop.com")
    bo = _customer(client, "bo@shop.com")
    assert engine.wait_idle(app, timeout=60)
    _run(app)
    seed_customers([{"name": "Cy", "email": "cy@shop.com"}])
    assert client.delete(f"/api/customers/{ann}").status_code == 204
    assert FlowEnrolment.objects(customer_id=ann).count() == 0 and FlowStepRun.objects(customer_id=ann).count() == 0
    Customer.objects(pk=bo).delete()  # deleted around the API: the flow finds them gone
    clock.advance(hours=2)
    _run(app)
    assert FlowEnrolment.objects.get(customer_id=bo).exit_reason == "customer deleted"
    assert not _handed(app)


@pytest.mark.parametrize("flow", [
    {"trigger": {"type": "customer.created", "rules": [{"op": "OR", "rules": [
        {"field": "attributes.plan", "operator": "=", "value": "pro"}]}]}, "steps": [{"type": "exit"}]},
    {"trigger": {"type": "customer.created"}, "steps": [
        {"type": "wait", "hours": 1},
        {"type": "branch", "rules": [{"field": "attributes.plan", "operator": "exists", "value": True}]}]},
    {"trigger": {"type": "customer.created"}, "steps": [{"type": "update", "attributes": {"plan": "free"}}]},
], ids=["trigger-rule-in-a-group", "branch-rule", "update-step"])
def test_an_attribute_a_flow_uses_cannot_be_deleted_until_the_flow_is_archived(client, admin_client, flow):
    assert client.post("/api/attributes", json={"key": "plan", "type": "string"}).status_code == 201
    ident = client.post("/api/flows", json={"name": "Uses plan", **flow}).get_json()["_id"]
    refused = admin_client.delete("/api/attributes/plan")
    assert refused.status_code == 409 and ident in refused.get_json()["errors"]["flows"][0]
    assert client.post(f"/api/flows/{ident}/archive").status_code == 200
    assert admin_client.delete("/api/attributes/plan").status_code == 204


def test_two_campaigns_and_a_flow_racing_never_exceed_the_cap(make_app):
    """Cap 2 per 7 days; each customer is the target of two campaigns and an order's thank-you, all
    sent at once on the engine's threads: everyone gets exactly 2, and the third is counted capped."""
    app = make_app(FREQUENCY_CAP="2/168h", ENGINE_THREADS=4)
    client = signed_in(app, make_user(MARKETER, email="race@example.com"))
    people = 150
    seed_customers([{"name": f"R{i}", "email": f"r{i}@shop.com"} for i in range(people)])
    flow = _flow(client, {"type": "order.created"}, [{"type": "send", "subject": "Thanks", "text": "x"}])
    campaigns = [client.post("/api/campaigns", json={"name": name, "text": "x", "rules": []}).get_json()["_id"]
                 for name in ("One", "Two")]
    ids = [str(c.pk) for c in Customer.objects.only("id")]
    go = threading.Barrier(3)

    def send(campaign):
        go.wait()
        assert client.post(f"/api/campaigns/{campaign}/send").status_code == 202

    def order():
        go.wait()
        response = client.post("/api/orders/bulk", json=[{"customerId": pk, "amount": 5} for pk in ids])
        assert response.status_code in (200, 207), response.get_json()

    threads = [threading.Thread(target=send, args=(c,)) for c in campaigns] + [threading.Thread(target=order)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.wait_idle(app, timeout=120)
    _run(app)
    per_person = {}
    for message in _handed(app):
        per_person.setdefault(message.to, set()).add(message.message_id)
    assert len(per_person) == people and {len(ids_) for ids_ in per_person.values()} == {2}
    capped_records = Delivery.objects(error="frequency cap: 2 messages in 168 h").count()
    capped_steps = client.get(f"/api/flows/{flow}/stats").get_json()["capped"]
    assert capped_records + capped_steps == people


def test_a_batch_that_died_after_recording_its_sends_does_not_send_them_again(client, app, clock, monkeypatch):
    """The worker wrote the batch's delivery records, then died before its step runs and moves: the
    next worker finds the records and sends nothing again."""
    ident = _flow(client, {"type": "customer.created"}, [WELCOME])
    seed_customers([{"name": f"D{i}", "email": f"d{i}@shop.com"} for i in range(5)])
    with app.app_context():
        flow = flows.Flow.objects.get()
        flows.enter(flow, [(c.pk, None, None) for c in Customer.objects.only("id")])
        def die_after_the_records(runner_):
            raise RuntimeError("worker died after writing the delivery records")

        with monkeypatch.context() as patch, pytest.raises(RuntimeError):
            patch.setattr(flows._Runner, "_move_all", die_after_the_records)
            flows.run_due()
        assert Delivery.objects.count() == 5 and FlowEnrolment.objects(status="running").count() == 5
        clock.advance(seconds=app.config["DISPATCH_CLAIM_LEASE_S"] + 1)
        assert flows.run_due() == 5
    assert len(_handed(app)) == 5, "each message handed off once"
    assert FlowEnrolment.objects(status="completed").count() == 5
    stats = client.get(f"/api/flows/{ident}/stats").get_json()
    assert stats["sent"] == 5 and stats["steps"][0]["outcomes"] == {"sent": 5} and Delivery.objects.count() == 5


class _Died(BaseException):
    """The worker's process is killed: nothing after this point runs, no cleanup either."""


def test_a_worker_killed_mid_batch_resends_only_what_ran_since_the_last_flush(client, app, clock, monkeypatch):
    """One batch of 20; what ran is recorded every ENGINE_FLUSH_S (here after each enrolment); the
    worker dies handing off the 11th message: the next worker sends the other 10 and repeats none of
    the 10 recorded (a batch-sized window would send those 10 again)."""
    _flow(client, {"type": "customer.created"}, [WELCOME])
    seed_customers([{"name": f"K{i}", "email": f"k{i:02d}@shop.com"} for i in range(20)])
    app.config["ENGINE_FLUSH_S"] = 1e-6
    with app.app_context():
        vendor = engine.vendor(app)
        flows.enter(flows.Flow.objects.get(), [(c.pk, None, None) for c in Customer.objects.only("id")])
    original, attempts = vendor.send, []

    def dies_on_the_eleventh(message):
        attempts.append(message.to)
        if len(attempts) == 11:
            raise _Died()
        return original(message)

    def killed(runner_, kind, exc, trace):  # SIGKILL: the batch's closing flush never runs
        if kind is _Died:
            return False
        return exit_(runner_, kind, exc, trace)

    exit_ = flows._Runner.__exit__
    with monkeypatch.context() as patch, app.app_context():
        patch.setattr(vendor, "send", dies_on_the_eleventh)
        patch.setattr(flows._Runner, "__exit__", killed)
        with pytest.raises(_Died):
            flows.run_due(limit=20)
        assert Delivery.objects.count() == 10 and FlowEnrolment.objects(status="completed").count() == 10
        clock.advance(seconds=app.config["DISPATCH_CLAIM_LEASE_S"] + 1)
        assert flows.run_due() == 10
    sent = [m.to for m in _handed(app)]
    assert len(sent) == 20 and len(set(sent)) == 20, "each message handed off once"
    assert FlowEnrolment.objects(status="completed").count() == 20 and Delivery.objects.count() == 20


def test_a_branch_decided_before_a_crash_keeps_its_path(client, app, clock, monkeypatch):
    """The branch said yes (a VIP), the worker died before moving the enrolment, the customer lost the
    tag meanwhile: the next worker takes the same path (its answer was written when decided)."""
    _flow(client, {"type": "customer.created"}, [
        {"type": "branch", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}], "else": 3},
        {"type": "send", "subject": "VIP", "text": "x"}, {"type": "exit"},
        {"type": "send", "subject": "Regular", "text": "y"}])
    seed_customers([{"name": "Vi", "email": "vi@shop.com", "tags": ["vip"]}])
    with app.app_context():
        flows.enter(flows.Flow.objects.get(), [(Customer.objects.get().pk, None, None)])

        def die(self):
            raise RuntimeError("worker died")

        with monkeypatch.context() as patch, pytest.raises(RuntimeError):
            patch.setattr(flows._Runner, "flush", die)
            flows.run_due()
        Customer.objects.update(set__tags=[])
        clock.advance(seconds=app.config["DISPATCH_CLAIM_LEASE_S"] + 1)
        assert flows.run_due() == 1
    assert {m.subject for m in _handed(app)} == {"VIP"}


def test_a_long_batch_keeps_its_claim_while_it_sends(make_app, clock, monkeypatch):
    """Each hand-off takes 6 s of a 10 s lease: the batch renews its claim, so another worker finds
    nothing to take while it still sends (and nobody is sent twice)."""
    app = make_app(DISPATCH_CLAIM_LEASE_S=10)
    client = signed_in(app, make_user(MARKETER, email="lease@example.com"))
    _flow(client, {"type": "customer.created"}, [WELCOME])
    seed_customers([{"name": f"L{i}", "email": f"l{i}@shop.com"} for i in range(4)])
    taken = []
    with app.app_context():
        flows.enter(flows.Flow.objects.get(), [(c.pk, None, None) for c in Customer.objects.only("id")])
        original = flows._hand_off

        def slow(runner_, doc, step, record, customer):
            clock.advance(seconds=6)
            taken.extend(flows.claim("another-worker", utcnow(), 10))
            return original(runner_, doc, step, record, customer)

        monkeypatch.setattr(flows, "_hand_off", slow)
        assert flows.run_due() == 4
    assert taken == [] and len(_handed(app)) == 4
