"""The campaign engine in-process (eager tasks): segments, campaigns, delivery, receipts, schedule."""
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

import engine
from engine import jobs, planner, runner, sender
from engine.vendors import SIGNATURE_HEADER, TIMESTAMP_HEADER, SimulatedVendor, sign
from models import BatchClaim, Campaign, Delivery, Segment
from tests.checks import error_of
from tests.factories import seed_customers

SECRET = "webhook-secret-for-tests"


def _future(seconds):
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def engine_app(make_app):
    return make_app(VENDOR_WEBHOOK_SECRET=SECRET, DISPATCH_BATCH_SIZE=3, VENDOR_RECEIPTS=False)


@pytest.fixture
def marketer(engine_app):
    from models.roles import MARKETER
    from tests.factories import make_user, signed_in

    return signed_in(engine_app, make_user(MARKETER, email="m@example.com"))


def seed_people():
    """Eight customers: Person 0..7, spending 0..700."""
    docs = [{"name": f"Person {i}", "email": f"p{i}@shop.com", "totalSpend": float(i * 100),
             "numVisits": i, "tags": ["vip"] if i % 2 else []} for i in range(8)]
    seed_customers(docs)
    return docs


@pytest.fixture
def people(engine_app):
    return seed_people()


def _create(client, **body):
    payload = {"name": "Spring", "message": "Hi {{firstName}}, you spent {{totalSpend}}!",
               "rules": [{"field": "totalSpend", "operator": ">=", "value": "300"}], **body}
    response = client.post("/api/campaigns", json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- creation ----------------------------------------------------------------------------------------
BAD_CAMPAIGNS = [
    ({"message": "Hi {{nickname}}"}, "message"),
    ({"message": "{{ name.__class__ }}"}, "message"),
    ({"message": "{% for x in y %}{% endfor %}"}, "message"),
    ({"message": "{{ name | upper }}"}, "message"),
    ({"message": "Hi {{ name"}, "message"),
    ({"message": ""}, "message"),
    ({"name": ""}, "name"),
    ({"segmentId": "64b7f0000000000000000000"}, "rules"),
    ({"rules": None}, "rules"),
    ({"scheduledAt": "2001-01-01T00:00:00Z"}, "scheduledAt"),
    ({"channel": "sms"}, "channel"),
    ({"messagesPerSecond": 0}, "messagesPerSecond"),
    ({"messagesPerSecond": 1e-300}, "messagesPerSecond"),
    ({"messagesPerSecond": 0.05}, "messagesPerSecond"),
    ({"messagesPerSecond": 10001}, "messagesPerSecond"),
    ({"name": "Sale\r\nBcc: everyone@example.com"}, "name"),
    ({"name": "Sale\nnow"}, "name"),
    ({"messagesPerSecond": "5"}, "messagesPerSecond"),
    ({"rules": [{"field": "totalSpend", "operator": ">", "value": "x"}]}, "rules[0].value"),
    ({"status": "completed"}, "status"),
]


@pytest.mark.parametrize("change, field", BAD_CAMPAIGNS)
def test_bad_campaign_is_400_and_writes_nothing(marketer, change, field):
    body = {"name": "Spring", "message": "Hi {{name}}",
            "rules": [{"field": "totalSpend", "operator": ">", "value": "1"}], **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = marketer.post("/api/campaigns", json=body)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["errors"]
    assert Campaign.objects.count() == 0


def test_unknown_segment_is_404(marketer):
    response = marketer.post("/api/campaigns", json={
        "name": "S", "message": "Hi", "segmentId": "64b7f0000000000000000000"})
    assert response.status_code == 404 and Campaign.objects.count() == 0


# --- sending -------------------------------------------------------------------------------------------
def test_send_delivers_once_per_recipient_with_personal_messages(marketer, people, campaign_action):
    campaign = _create(marketer)
    assert campaign["status"] == "draft" and campaign["sentAt"] is None
    body = campaign_action(marketer, campaign["_id"])
    assert body["status"] == "completed" and body["sentAt"] and body["completedAt"] >= body["sentAt"]
    none = {"unique": 0, "uniqueHuman": 0, "total": 0}
    assert body["stats"] == {"audienceSize": 5, "pending": 0, "sent": 5, "delivered": 0, "failed": 0,
                             "cancelled": 0, "awaitingReceipts": 5, "total": 5, "suppressed": 0,
                             "failureReasons": [], "handedOff": 5, "bounced": 0, "hardBounced": 0,
                             "complaints": 0, "unsubscribed": 0, "opens": none, "clicks": none,
                             "revenue": 0.0, "orders": 0, "revenuePerRecipient": 0.0}
    records = Delivery.objects(campaign_id=campaign["_id"]).order_by("email")
    assert [r.email for r in records] == [f"p{i}@shop.com" for i in range(3, 8)]
    sent = {m.to: m for m in engine.vendor(marketer.application).messages}
    assert sent["p3@shop.com"].body == "Hi Person, you spent 300!"
    assert all(r.message is None for r in records)  # rendered as sent: nothing personal kept per record
    assert all(r.status == "SENT" and r.attempts == 1 and r.vendor_message_id for r in records)
    again = marketer.post(f"/api/campaigns/{campaign['_id']}/send")
    assert again.status_code == 409
    assert error_of(again)["error"] == "Cannot send a campaign that is completed"


def test_deliveries_listing(marketer, people, campaign_action):
    campaign = _create(marketer)
    campaign_action(marketer, campaign["_id"])
    page = marketer.get(f"/api/campaigns/{campaign['_id']}/deliveries?per_page=2").get_json()
    assert page["total"] == 5 and len(page["items"]) == 2
    assert marketer.get(f"/api/campaigns/{campaign['_id']}/deliveries?status=FAILED").get_json()["total"] == 0
    assert marketer.get(f"/api/campaigns/{campaign['_id']}/deliveries?status=nope").status_code == 400
    assert marketer.get("/api/campaigns/64b7f0000000000000000000/deliveries").status_code == 404


def test_exactly_once_when_plan_and_batches_run_again(engine_app, marketer, people, campaign_action):
    campaign = _create(marketer)
    campaign_action(marketer, campaign["_id"])
    vendor = engine.vendor(engine_app)
    sends_before = len(vendor.sent)
    Campaign.objects(pk=campaign["_id"]).update_one(set__status="sending", unset__plan_cursor=True,
                                                    unset__planned=True)
    outcomes = []
    with engine_app.app_context():  # a redelivered plan, re-delivering every old batch while still sending
        for token in Delivery.objects(campaign_id=campaign["_id"]).distinct("batch_token"):
            outcomes.append(sender.deliver_batch(campaign["_id"], token))
        planner.plan(campaign["_id"], lambda cid, token: outcomes.append(sender.deliver_batch(cid, token)))
    assert outcomes == [sender.DONE] * 2 + [sender.DONE] * 2  # each reached its claim: nothing PENDING
    assert len(vendor.sent) == sends_before  # the vendor was not called again
    records = Delivery.objects(campaign_id=campaign["_id"])
    assert records.count() == 5
    assert sorted(r.attempts for r in records) == [1] * 5  # nobody was sent twice


@pytest.mark.parametrize("action", ["send", "pause", "resume", "cancel", "retry-failed"])
def test_actions_on_unknown_campaign_are_404(marketer, action):
    assert marketer.post(f"/api/campaigns/64b7f0000000000000000000/{action}").status_code == 404
    assert marketer.post(f"/api/campaigns/nope/{action}").status_code == 404


def test_segment_is_evaluated_at_send_time(marketer, people, campaign_action):
    segment = marketer.post("/api/segments", json={
        "name": "VIPs", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}).get_json()
    campaign = marketer.post("/api/campaigns", json={
        "name": "To VIPs", "message": "Hello {{name}}", "segmentId": segment["_id"]}).get_json()
    marketer.patch(f"/api/segments/{segment['_id']}", json={
        "rules": [{"field": "tags", "operator": "contains", "value": "vip"},
                  {"field": "numVisits", "operator": ">", "value": "4"}]})
    sent = campaign_action(marketer, campaign["_id"])
    assert sent["stats"]["audienceSize"] == 2  # 5 and 7: the rules as they were at send time
    assert marketer.delete(f"/api/segments/{segment['_id']}").status_code == 204


# --- receipts ------------------------------------------------------------------------------------------
def _signed(client, items, secret=SECRET, timestamp=None, raw=None):
    body = raw if raw is not None else json.dumps(items).encode()
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    anon = client.application.test_client()
    return anon.post("/api/delivery-receipts", data=body, content_type="application/json", headers={
        TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)})


@pytest.fixture
def sent_campaign(marketer, people, campaign_action):
    campaign = _create(marketer)
    campaign_action(marketer, campaign["_id"])
    return campaign, list(Delivery.objects(campaign_id=campaign["_id"]).order_by("email"))


def test_a_receipt_naming_no_known_record_is_unknown_not_another_record(marketer, sent_campaign):
    """A record without a vendor message id, and in the same batch a receipt for an unknown delivery
    without one: that receipt is unknown (before, it matched the record through the missing id)."""
    campaign, records = sent_campaign
    Delivery.objects(pk=records[0].pk).update_one(unset__vendor_message_id=True)
    now = "2024-06-01T10:00:00Z"
    body = _signed(marketer, [
        {"deliveryId": str(records[0].pk), "status": "DELIVERED", "timestamp": now},
        {"deliveryId": "64b7f0000000000000000000", "status": "FAILED", "timestamp": now, "error": "x"},
    ]).get_json()
    assert [r["result"] for r in body["results"]] == ["applied", "unknown"]
    assert Delivery.objects.get(pk=records[0].pk).status == "DELIVERED"
    assert Delivery.objects(status="FAILED").count() == 0


def test_receipts_apply_idempotently_and_report_per_item(marketer, sent_campaign):
    campaign, records = sent_campaign
    now = "2024-06-01T10:00:00Z"
    items = [
        {"deliveryId": str(records[0].pk), "status": "DELIVERED", "timestamp": now},
        {"vendorMessageId": records[1].vendor_message_id, "status": "FAILED", "timestamp": now, "error": "mailbox_full"},
        {"deliveryId": str(records[2].pk), "status": "FAILED", "timestamp": now, "error": "blocked"},
        {"deliveryId": "64b7f0000000000000000000", "status": "DELIVERED", "timestamp": now},
        {"deliveryId": str(records[3].pk), "status": "OPENED", "timestamp": now},
        {"status": "DELIVERED", "timestamp": now},
        "not an object",
    ]
    first = _signed(marketer, items)
    assert first.status_code == 200
    body = first.get_json()
    assert (body["applied"], body["unchanged"], body["unknown"], body["invalid"]) == (3, 0, 1, 3)
    assert [r["result"] for r in body["results"]] == ["applied"] * 3 + ["unknown"] + ["invalid"] * 3
    assert "status" in body["results"][4]["errors"] and "deliveryId" in body["results"][5]["errors"]

    stats = marketer.get(f"/api/campaigns/{campaign['_id']}").get_json()["stats"]
    assert (stats["sent"], stats["delivered"], stats["failed"]) == (2, 1, 2)
    assert stats["failureReasons"] == [{"reason": "blocked", "count": 1}, {"reason": "mailbox_full", "count": 1}]
    first = Delivery.objects.get(pk=records[0].pk)
    assert first.delivered_at == first.sent_at  # a vendor clock behind ours never predates the send

    again = _signed(marketer, items[:3]).get_json()
    assert (again["applied"], again["unchanged"]) == (0, 3)
    late = _signed(marketer, [{"deliveryId": str(records[0].pk), "status": "FAILED", "timestamp": now}])
    assert late.get_json()["unchanged"] == 1
    assert Delivery.objects.get(pk=records[0].pk).status == "DELIVERED"


def test_a_receipt_that_overtakes_the_senders_record_marks_it_sent_and_it_is_not_sent_again(
        engine_app, marketer, people):
    """The vendor's receipt can arrive before the sender has recorded the hand-off (it writes outcomes
    every ENGINE_FLUSH_S, or its worker died first): the record is then sent as of the receipt, and the
    batch, delivered again, does not send it a second time."""
    campaign = _create(marketer)
    Campaign.objects(pk=campaign["_id"]).update_one(set__status="sending")
    with engine_app.app_context():
        tokens = []
        planner.plan(campaign["_id"], lambda cid, token: tokens.append(token))
    record = Delivery.objects(campaign_id=campaign["_id"]).order_by("email").first()
    applied = _signed(marketer, [{"deliveryId": str(record.pk), "status": "DELIVERED",
                                  "timestamp": "2030-01-01T00:00:00Z"}]).get_json()
    assert applied["applied"] == 1
    after = Delivery.objects.get(pk=record.pk)
    assert after.status == "DELIVERED" and after.sent_at == after.delivered_at == datetime(2030, 1, 1)
    assert after.attempts == 1
    vendor = engine.vendor(engine_app)
    before = len(vendor.sent)
    with engine_app.app_context():
        for token in tokens:
            sender.deliver_batch(campaign["_id"], token)
    assert len(vendor.sent) == before + 4  # the other four recipients, and not that one again
    assert Delivery.objects.get(pk=record.pk).status == "DELIVERED"
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"


@pytest.mark.parametrize(
    "secret, offset, status",
    [("wrong-secret", 0, 401), (SECRET, -3600, 401), (SECRET, "soon", 401),
     (SECRET, 3600, 401), (SECRET, 330, 401)],  # from the future, beyond the 300 s skew
    ids=["wrong secret", "an hour old", "not a number", "an hour ahead", "beyond the skew ahead"],
)
def test_receipts_need_a_fresh_valid_signature(marketer, sent_campaign, secret, offset, status):
    _, records = sent_campaign
    items = [{"deliveryId": str(records[0].pk), "status": "DELIVERED", "timestamp": "2024-06-01T10:00:00Z"}]
    timestamp = offset if isinstance(offset, str) else int(time.time()) + offset
    response = _signed(marketer, items, secret=secret, timestamp=timestamp)
    assert response.status_code == status
    assert Delivery.objects.get(pk=records[0].pk).status == "SENT"


@pytest.mark.parametrize("timestamp, signature", [
    ("\u00b2", None), ("1" * 5000, None), ("١٢٣", None),  # superscript two, 5,000 digits, Arabic-Indic digits
    (None, "sha256=\u00e9\u00e9"), (None, "sha256=" + "\u0663" * 64),  # non-ASCII signatures
], ids=["superscript", "5000 digits", "arabic digits", "accented signature", "arabic signature"])
def test_odd_webhook_headers_are_401_not_500(engine_app, timestamp, signature):
    """Headers no client should send (the probe's: a \\xb2 timestamp, a 5,000-digit one, a non-ASCII
    signature) are refused as unauthenticated, never a 500."""
    body = b"[]"
    now = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: (timestamp or now).encode().decode("latin-1"),
               SIGNATURE_HEADER: (signature or sign(SECRET, now, body)).encode().decode("latin-1")}
    response = engine_app.test_client().post("/api/delivery-receipts", data=body,
                                             content_type="application/json", headers=headers)
    assert response.status_code == 401, response.get_json()


def test_unsigned_receipts_are_401(engine_app):
    response = engine_app.test_client().post("/api/delivery-receipts", json=[])
    assert response.status_code == 401


@pytest.mark.parametrize("raw, status", [(b'{"a": 1}', 400), (b"[" + b"{}," * 1000 + b"{}]", 400),
                                         (b"not json", 400)])
def test_malformed_receipt_batches_are_400(marketer, raw, status):
    assert _signed(marketer, None, raw=raw).status_code == status


def test_retry_failed_resends_only_failed_recipients(marketer, sent_campaign, campaign_action):
    campaign, records = sent_campaign
    _signed(marketer, [{"deliveryId": str(r.pk), "status": "FAILED", "timestamp": "2024-06-01T10:00:00Z",
                        "error": "mailbox_full"} for r in records[:2]]
            + [{"deliveryId": str(records[2].pk), "status": "DELIVERED", "timestamp": "2024-06-01T10:00:00Z"}])
    assert campaign_action(marketer, campaign["_id"], "retry-failed")["status"] == "completed"
    after = {r.pk: r for r in Delivery.objects(campaign_id=campaign["_id"])}
    assert [after[r.pk].attempts for r in records] == [2, 2, 1, 1, 1]
    assert [after[r.pk].status for r in records] == ["SENT", "SENT", "DELIVERED", "SENT", "SENT"]
    assert len(after) == 5


def test_a_batch_claimed_by_a_live_worker_is_left_to_it_until_its_lease_expires(engine_app, marketer, people):
    campaign = _create(marketer)
    with engine_app.app_context():
        held = []
        Campaign.objects(pk=campaign["_id"]).update_one(set__status="sending")
        planner.plan(campaign["_id"], lambda cid, token: held.append(token))  # planned, not delivered yet
        BatchClaim(token=held[0], claimed_by="busy-worker", claimed_at=datetime.utcnow()).save()
        vendor = engine.vendor(engine_app)
        before = len(vendor.sent)
        assert sender.deliver_batch(campaign["_id"], held[0]) == sender.HELD  # come back later
        assert len(vendor.sent) == before
        assert Delivery.objects(batch_token=held[0], status="PENDING").count() == 3
        BatchClaim.objects(token=held[0]).update_one(set__claimed_at=datetime.utcnow() - timedelta(hours=1))
        assert sender.deliver_batch(campaign["_id"], held[0]) == sender.DONE  # the lease ran out: taken over
        assert Delivery.objects(batch_token=held[0], status="SENT").count() == 3
        assert BatchClaim.objects.count() == 0  # released when done


def test_retry_failed_moves_records_into_new_batches_and_clears_old_outcomes(marketer, sent_campaign,
                                                                               campaign_action):
    """A batch token is never reused, so a stale worker's late write to an old batch cannot touch a
    retried record; the retried records' old failure times do not outlive the retry."""
    campaign, records = sent_campaign
    _signed(marketer, [{"deliveryId": str(r.pk), "status": "FAILED", "timestamp": "2030-01-01T00:00:00Z",
                        "error": "blocked"} for r in records])
    old = {r.pk: r.batch_token for r in records}
    assert campaign_action(marketer, campaign["_id"], "retry-failed")["status"] == "completed"
    after = {r.pk: r for r in Delivery.objects(campaign_id=campaign["_id"])}
    assert all(after[pk].batch_token != token for pk, token in old.items())
    assert len({after[pk].batch_token for pk in old}) == len(set(old.values()))  # one new batch per old one
    assert all(r.status == "SENT" and r.failed_at is None and r.error is None for r in after.values())


# --- webhook round trip through a real HTTP server ---------------------------------------------------
def test_simulated_vendor_reports_outcomes_through_the_webhook(make_app):
    import threading

    from werkzeug.serving import make_server

    from models.roles import MARKETER
    from tests.factories import make_user, signed_in

    app = make_app(VENDOR_WEBHOOK_SECRET=SECRET, VENDOR_RECEIPTS=True, VENDOR_RECEIPT_DELAY_S=0.05,
                   VENDOR_SUCCESS_RATE=0.5, VENDOR_SEED="round-trip")
    # 32 recipients at a seeded 50% rate over random message ids: all one outcome has odds 2 in 2^32
    # (with 8 it was 2 in 256, and it happened)
    seed_customers([{"name": f"Person {i}", "email": f"p{i}@shop.com"} for i in range(32)])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app.config["VENDOR_RECEIPT_URL"] = f"http://127.0.0.1:{server.server_port}/api/delivery-receipts"
    try:
        client = signed_in(app, make_user(MARKETER, email="w@example.com"))
        campaign = _create(client, rules=[])
        client.post(f"/api/campaigns/{campaign['_id']}/send")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stats = client.get(f"/api/campaigns/{campaign['_id']}").get_json()["stats"]
            if stats["delivered"] + stats["failed"] == 32:
                break
            time.sleep(0.1)
    finally:
        server.shutdown()
    vendor = SimulatedVendor(0.5, "round-trip")
    expected = [vendor.outcome(r.vendor_message_id) for r in Delivery.objects(campaign_id=campaign["_id"])]
    assert stats["delivered"] == sum(1 for status, _ in expected if status == "DELIVERED")
    assert stats["failed"] == sum(1 for status, _ in expected if status == "FAILED")
    assert 0 < stats["delivered"] < 32  # a seeded 50% rate: both outcomes occur
    assert sum(r["count"] for r in stats["failureReasons"]) == stats["failed"]
    for record in Delivery.objects(campaign_id=campaign["_id"]):  # times that mean what they say
        assert record.sent_at <= (record.delivered_at or record.failed_at)


# --- scheduling ---------------------------------------------------------------------------------------
def test_scheduled_campaign_starts_when_due(engine_app, marketer, people):
    campaign = _create(marketer, scheduledAt=_future(3600))
    assert campaign["status"] == "scheduled" and campaign["sentAt"] is None
    listed = marketer.get("/api/campaigns/").get_json()[0]
    assert listed["sentAt"] == campaign["scheduledAt"]  # the legacy list shows a date it can render
    with engine_app.app_context():
        assert engine.start_due() == 0
        assert engine.start_due(now=datetime.utcnow() + timedelta(hours=2)) == 1
    assert engine.wait_idle(engine_app, timeout=30)
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"
    assert Delivery.objects(campaign_id=campaign["_id"]).count() == 5


def test_scheduled_campaign_can_be_sent_early_or_cancelled(marketer, people, campaign_action):
    early = _create(marketer, scheduledAt=_future(3600))
    assert campaign_action(marketer, early["_id"])["status"] == "completed"
    later = _create(marketer, name="Later", scheduledAt=_future(3600))
    assert marketer.post(f"/api/campaigns/{later['_id']}/cancel").get_json()["status"] == "cancelled"


def test_rate_limited_campaign_is_paced(make_app):
    from models.roles import MARKETER
    from tests.factories import make_user, signed_in

    app = make_app(VENDOR_WEBHOOK_SECRET=SECRET, DISPATCH_BATCH_SIZE=2, VENDOR_RECEIPTS=False)
    seed_people()
    client = signed_in(app, make_user(MARKETER, email="r@example.com"))
    campaign = _create(client, rules=[], messagesPerSecond=20)
    started = time.monotonic()
    assert client.post(f"/api/campaigns/{campaign['_id']}/send").status_code == 202
    assert engine.wait_idle(app, timeout=30)
    assert time.monotonic() - started >= 7 / 20  # 8 messages at 20 per second
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"
    sent_at = sorted(r.sent_at for r in Delivery.objects(campaign_id=campaign["_id"]))
    assert sent_at[-1] - sent_at[0] >= timedelta(seconds=0.2)


# --- segments -----------------------------------------------------------------------------------------
def test_segment_crud_and_preview(marketer, people):
    rules = [{"field": "totalSpend", "operator": "between", "value": ["200", "500"]}]
    preview = marketer.post("/api/segments/preview", json={"rules": rules}).get_json()
    assert preview["audienceSize"] == 4
    assert preview["sample"][0] == {"name": "Person 2", "email": "p2@shop.com"}
    created = marketer.post("/api/segments", json={"name": "Mid", "rules": rules})
    assert created.status_code == 201
    segment = created.get_json()
    assert segment["rules"] == rules and segment["logicalOperator"] == "AND"
    assert marketer.post("/api/segments", json={"name": "Mid", "rules": []}).status_code == 409
    assert marketer.get("/api/segments").get_json()["total"] == 1
    renamed = marketer.patch(f"/api/segments/{segment['_id']}", json={"name": "Middle"}).get_json()
    assert renamed["name"] == "Middle" and renamed["rules"] == rules
    assert marketer.patch(f"/api/segments/{segment['_id']}", json={}).status_code == 400
    assert marketer.delete(f"/api/segments/{segment['_id']}").status_code == 204
    assert marketer.get(f"/api/segments/{segment['_id']}").status_code == 404
    assert Segment.objects.count() == 0


@pytest.mark.parametrize(
    "body, field",
    [({"rules": []}, "name"), ({"name": "X"}, "rules"),
     ({"name": "X", "rules": [{"op": "AND", "rules": [{"field": "x", "operator": "=", "value": "1"}]}]},
      "rules[0].rules[0].field"),
     ({"name": "X", "rules": {"$where": "1"}}, "rules")],
)
def test_bad_segments_are_400(marketer, body, field):
    response = marketer.post("/api/segments", json=body)
    assert response.status_code == 400 and field in response.get_json()["errors"]
    assert Segment.objects.count() == 0


def test_segment_in_use_cannot_be_deleted(marketer, people):
    segment = marketer.post("/api/segments", json={"name": "All", "rules": []}).get_json()
    marketer.post("/api/campaigns", json={"name": "Soon", "message": "Hi", "segmentId": segment["_id"],
                                          "scheduledAt": _future(3600)})
    assert marketer.delete(f"/api/segments/{segment['_id']}").status_code == 409


def test_viewer_cannot_send(engine_app, marketer, people):
    from models.roles import VIEWER
    from tests.factories import make_user, signed_in

    viewer_client = signed_in(engine_app, make_user(VIEWER, email="v@example.com"))
    campaign = _create(marketer)
    assert viewer_client.post(f"/api/campaigns/{campaign['_id']}/send").status_code == 403
    assert viewer_client.get(f"/api/campaigns/{campaign['_id']}").status_code == 200


def test_sweep_requeues_lost_batches_and_stalled_plans(engine_app, marketer, people, campaign_action):
    """A batch whose task was lost, or whose worker died holding it, is delivered by the sweep."""
    campaign = _create(marketer)
    campaign_action(marketer, campaign["_id"])
    # Make it look as if workers died mid-campaign: records pending, their batches claimed an hour ago.
    hour_ago = datetime.utcnow() - timedelta(hours=1)
    Campaign.objects(pk=campaign["_id"]).update_one(set__status="sending")
    Delivery._get_collection().update_many(
        {"campaign": Campaign.objects.get(pk=campaign["_id"]).pk},
        {"$set": {"status": "PENDING", "createdAt": hour_ago}},
    )
    for token in Delivery.objects(campaign_id=campaign["_id"]).distinct("batch_token"):
        BatchClaim(token=token, claimed_by="dead-worker", claimed_at=hour_ago).save()
    with engine_app.app_context():
        assert jobs.sweep(runner.submit) == (0, 0, 2)  # two batches of three
        assert engine.wait_idle(engine_app, timeout=30)
        assert jobs.sweep(runner.submit) == (0, 0, 0)
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"
    assert all(r.status == "SENT" and r.attempts == 2 for r in Delivery.objects(campaign_id=campaign["_id"]))


# --- receipts and the sender's own outcome writes: each update touches only the state it read -----------
def _batch(n=3, token="tok"):
    from bson import ObjectId

    from engine import store

    campaign = ObjectId()
    docs = [store.new_record(campaign, {"_id": ObjectId(), "email": f"r{i}@shop.com"}, token, datetime(2026, 1, 1),
                             "crm.test") for i in range(n)]
    store.insert_records(docs)
    return [doc["_id"] for doc in docs]


def _statuses(ids):
    return [Delivery.objects.get(pk=i).status for i in ids]


def test_a_receipt_that_overtakes_the_senders_outcome_write_is_kept(app):
    """The vendor's DELIVERED for the middle record arrives before the sender writes the chunk's
    outcome: the outcome write (PENDING → SENT) leaves the delivered record alone."""
    from engine import store

    with app.app_context():
        ids = _batch()
        at = datetime(2026, 1, 1, 0, 5)
        store.apply_receipt_groups({("DELIVERED", None, at, True, None): [ids[1]]})
        store.record_outcomes("tok", ids, at, {}, at)
        assert _statuses(ids) == ["SENT", "DELIVERED", "SENT"]


@pytest.mark.parametrize("read_as_pending", [True, False])
def test_a_receipt_applied_on_a_stale_read_never_overwrites_a_final_record(app, read_as_pending):
    """receipts.apply read the record as PENDING or SENT, but it is DELIVERED by the time its update
    runs (another receipt won): the FAILED update changes nothing."""
    from engine import store

    with app.app_context():
        ids = _batch(1)
        at = datetime(2026, 1, 1, 0, 5)
        store.record_outcomes("tok", ids, at, {}, at)
        store.apply_receipt_groups({("DELIVERED", None, at, False, None): ids})
        store.apply_receipt_groups({("FAILED", "bounced", at, read_as_pending, "hard"): ids})
        record = Delivery.objects.get(pk=ids[0])
        assert (record.status, record.error, record.bounce) == ("DELIVERED", None, None)


def test_refused_receipt_signatures_are_rate_limited_and_a_signing_vendor_never_is(make_app):
    app = make_app(VENDOR_WEBHOOK_SECRET=SECRET, VENDOR_RECEIPTS=False, RATELIMIT_RECEIPTS_REFUSED="3 per minute")

    def post(address, secret=SECRET):
        body, now = b"[]", str(int(time.time()))
        return app.test_client().post("/api/delivery-receipts", data=body, content_type="application/json",
                                      environ_overrides={"REMOTE_ADDR": address},
                                      headers={TIMESTAMP_HEADER: now, SIGNATURE_HEADER: sign(secret, now, body)})

    for _ in range(3):
        assert post("203.0.113.66", secret="guess").status_code == 401
    assert post("203.0.113.66", secret="guess").status_code == 429  # the fourth guess in the minute
    assert post("203.0.113.66").status_code == 429  # from that address, everything until the window ends
    assert [post("198.51.100.5").status_code for _ in range(10)] == [200] * 10  # signed: never counted


def test_a_batchs_recipients_are_read_as_one_run_of_the_audience(engine_app):
    """The sender reads a batch's customers as the audience's run from its first id to its last (one
    indexed range, no list of ids); a recipient who left the audience since planning, or a retry's
    scattered records, are read by id; a deleted customer is absent (its record fails as deleted)."""
    with engine_app.app_context():
        seed_customers([{"name": f"P{i}", "email": f"p{i}@shop.com", "totalSpend": 100 + i} for i in range(6)]
                       + [{"name": "Low", "email": "low@shop.com", "totalSpend": 5}])
        from models import Customer

        members = [c.pk for c in Customer.objects(total_spend__gte=100).order_by("id")]
        rules = {"op": "AND", "rules": [{"field": "totalSpend", "operator": ">=", "value": 100}]}
        campaign = Campaign(name="Big spenders", message="Hi", status="sending", rules=rules).save()
        by_id = []
        real_chunks = sender.in_chunks
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sender, "in_chunks", lambda ids: by_id.extend(ids) or real_chunks(ids))
            assert set(sender._customers(members, campaign)) == set(members)
            assert by_id == []  # every member came back from the run
            left = members[2]
            Customer.objects(pk=left).update_one(set__total_spend=1)  # left the audience after planning
            gone = members[3]
            Customer.objects(pk=gone).delete()
            found = sender._customers(members, campaign)
            assert set(found) == set(members) - {gone} and found[left]["email"] == "p2@shop.com"
            assert sorted(by_id) == sorted([left, gone])  # only those two were looked up by id
            low = Customer.objects.get(email="low@shop.com").pk  # a retry may name a non-member too
            assert set(sender._customers([members[0], low], campaign)) == {members[0], low}
            segment = Segment(name="Soon gone", rules={"op": "AND", "rules": []}).save()
            by_segment = Campaign(name="By segment", message="Hi", status="sending", segment_id=segment.pk).save()
            segment.delete()  # no audience to read a run of: every recipient by id
            by_id.clear()
            assert set(sender._customers(members[:2], by_segment)) == set(members[:2]) and len(by_id) == 2
