"""Dispatch through the real RabbitMQ with a Celery worker, and domain events on the topic exchange.

The worker runs in this process (``celery.contrib.testing.worker.start_worker``), so it shares the
embedded database; messages really go through RabbitMQ.
"""
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from kombu import Connection, Queue

from models import Campaign, Customer, Delivery
from models.roles import MARKETER
from tests.factories import make_user, seed_customers, signed_in

SECRET = "webhook-secret-for-tests"


@pytest.fixture
def broker_app(make_app, rabbitmq_url):
    queue = f"crm-test-{uuid.uuid4().hex[:12]}"
    app = make_app(CELERY_BROKER_URL=rabbitmq_url, CELERY_QUEUE=queue, DISPATCH_BATCH_SIZE=3,
                   VENDOR_RECEIPTS=False, VENDOR_WEBHOOK_SECRET=SECRET)
    # Without AMQP heartbeats the in-process test worker stops in about a second instead of ten.
    app.extensions["celery"].conf.broker_heartbeat = 0
    seed_customers(
        [{"name": f"Person {i}", "email": f"p{i}@shop.com", "totalSpend": float(i)} for i in range(10)]
    )
    yield app
    with Connection(rabbitmq_url) as connection:  # leave nothing behind on the broker
        Queue(queue, channel=connection.channel()).delete()
        Queue(f"{queue}-imports", channel=connection.channel()).delete()


def _wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_campaign_is_dispatched_by_a_worker_through_rabbitmq(broker_app, event_queue):
    client = signed_in(broker_app, make_user(MARKETER, email="m@example.com"))
    celery = broker_app.extensions["celery"]
    assert celery.conf.task_always_eager is False and celery.conf.task_acks_late is True
    campaign = client.post("/api/campaigns", json={"name": "Queued", "message": "Hi {{name}}",
                                                   "rules": []}).get_json()
    sent = client.post(f"/api/campaigns/{campaign['_id']}/send")
    assert sent.get_json()["status"] == "sending"  # answered before any delivery: the worker does it
    assert Delivery.objects.count() == 0

    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        done = _wait_for(lambda: Campaign.objects.get(pk=campaign["_id"]).status == "completed")
    assert done, Campaign.objects.get(pk=campaign["_id"]).status
    records = Delivery.objects(campaign_id=campaign["_id"])
    assert records.count() == 10
    assert {r.customer_id for r in records} == {c.pk for c in Customer.objects}
    assert all(r.status == "SENT" and r.attempts == 1 for r in records)

    events = event_queue()
    names = [e["event"] for e in events if e["campaignId"] == campaign["_id"]]
    assert names == ["campaign.created", "campaign.sending", "campaign.completed"]


class WorkerDied(BaseException):
    """Stands for the worker process dying in the middle of a batch: like a real death, nothing in
    the engine handles it (a BaseException passes every ``except Exception``)."""


def test_a_batch_redelivered_while_the_campaign_is_still_sending_is_not_sent_again(broker_app, monkeypatch):
    """Worker A sends batch 1 completely, then dies before acknowledging it; RabbitMQ puts the message
    back at the head of the queue and worker B receives it again while batches 2-4 are still PENDING
    (so the campaign is sending and the batch reaches its claim): it sends nobody a second time."""
    from engine import sender
    from engine.vendors import SimulatedVendor

    client = signed_in(broker_app, make_user(MARKETER, email="m@example.com"))
    celery = broker_app.extensions["celery"]
    campaign = client.post("/api/campaigns", json={"name": "Twice", "message": "Hi", "rules": []}).get_json()
    assert client.post(f"/api/campaigns/{campaign['_id']}/send").status_code == 202

    original_deliver, original_send = sender.deliver_batch, SimulatedVendor.send
    calls, handed, running = [], [], {}

    def send(self, message):
        handed.append(message.message_id)
        return original_send(self, message)

    def deliver(campaign_id, token, worker=None):
        status = Campaign.objects.get(pk=campaign_id).status
        others_pending = Delivery.objects(campaign_id=campaign_id, status="PENDING", batch_token__ne=token).count()
        before = len(handed)
        outcome = original_deliver(campaign_id, token, worker)
        calls.append({"token": token, "status": status, "others_pending": others_pending,
                      "outcome": outcome, "sends": len(handed) - before})
        if len(calls) == 1:  # batch 1 sent and recorded; the worker dies before the ack
            running["worker"].consumer.connection.collect()
            raise WorkerDied()
        return outcome

    monkeypatch.setattr(SimulatedVendor, "send", send)
    monkeypatch.setattr(sender, "deliver_batch", deliver)
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        running["worker"] = worker
        assert _wait_for(lambda: len(calls) >= 1, timeout=20), calls
        running["died"] = len(calls)
    completed = lambda: Campaign.objects.get(pk=campaign["_id"]).status == "completed"  # noqa: E731
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert _wait_for(lambda: len(calls) >= 5 and completed(), timeout=30), calls  # 1 + 1 again + 3
    first, again = calls[0], calls[1]
    assert first["sends"] == 3 and first["outcome"] == "done"
    assert again["token"] == first["token"]  # the redelivered message was consumed ...
    assert again["status"] == "sending" and again["others_pending"] == 7  # ... mid-campaign ...
    assert again["sends"] == 0 and again["outcome"] == "done"  # ... and sent nobody again
    assert len(handed) == len(set(handed)) == 10
    records = Delivery.objects(campaign_id=campaign["_id"])
    assert records.count() == 10 and all(r.status == "SENT" and r.attempts == 1 for r in records)


def test_worker_dying_mid_batch_loses_nothing_and_duplicates_nothing(broker_app, monkeypatch):
    """The batch's message was not acknowledged, so RabbitMQ hands it out again; each recipient
    still gets exactly one delivery record, and no message reaches the vendor's recipient twice."""
    import engine
    from engine import tasks
    from engine.vendors import SimulatedVendor

    broker_app.config["DISPATCH_CLAIM_LEASE_S"] = 1
    client = signed_in(broker_app, make_user(MARKETER, email="m@example.com"))
    celery = broker_app.extensions["celery"]
    campaign = client.post("/api/campaigns", json={"name": "Crash", "message": "Hi", "rules": []}).get_json()
    client.post(f"/api/campaigns/{campaign['_id']}/send")

    original_send, handed, running = SimulatedVendor.send, [], {}

    def send_then_die(self, message):
        handed.append(message.message_id)
        if len(handed) == 3 and "crashed" not in running:
            running["crashed"] = True
            running["worker"].consumer.connection.collect()  # the process is gone: no ack will come
            raise WorkerDied()
        return original_send(self, message)

    monkeypatch.setattr(SimulatedVendor, "send", send_then_die)
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10) as worker:
        running["worker"] = worker
        assert _wait_for(lambda: "crashed" in running, timeout=20)
    # Worker A is gone. RabbitMQ requeued its unacknowledged batch; a replacement worker takes over,
    # and should that message be lost too, beat's sweep re-queues the batch once its claim expired.
    completed = lambda: Campaign.objects.get(pk=campaign["_id"]).status == "completed"  # noqa: E731
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        if not _wait_for(completed, timeout=10):
            time.sleep(1.1)  # past the claim lease
            tasks.start_due_campaigns.delay()
        done = _wait_for(completed, timeout=30)
    assert running.get("crashed")
    assert done, Campaign.objects.get(pk=campaign["_id"]).status
    records = Delivery.objects(campaign_id=campaign["_id"])
    assert records.count() == 10
    assert {r.customer_id for r in records} == {c.pk for c in Customer.objects}
    assert all(r.status == "SENT" and r.attempts == 1 for r in records)
    ids = {r.vendor_message_id for r in records}
    assert ids <= engine.vendor(broker_app).accepted  # every recipient's message accepted, once
    assert len(set(handed)) == 10 < len(handed)  # the dead worker's in-flight messages came again


def test_every_persisted_customer_and_order_is_published(broker_app, events_on):
    customers, orders = events_on("customer.*"), events_on("order.*")
    client = signed_in(broker_app, make_user(MARKETER, email="m@example.com"))
    ann = client.post("/api/customers", json={"name": "Ann", "email": "ann@x.com"}).get_json()
    client.patch(f"/api/customers/{ann['_id']}", json={"name": "Ann Lee"})
    bulk = client.post("/api/customers/bulk", json=[
        {"name": "Bob", "email": "bob@x.com"}, {"name": "Ann B", "email": "ann@x.com"}, {"name": "x", "email": "bad"}])
    assert bulk.get_json()["counts"]["failed"] == 1
    client.put("/api/customers/by-email/cat@x.com", json={"name": "Cat"})
    single = client.post("/api/orders", json={"customerId": ann["_id"], "amount": 5}).get_json()
    many = client.post("/api/orders/bulk", json=[{"customerId": ann["_id"], "amount": 1, "externalId": "X1"},
                                                  {"customerId": ann["_id"], "amount": 1, "externalId": "X1"}])
    assert many.get_json()["counts"] == {"created": 1, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 0}

    got, order_events = [], []
    assert _wait_for(lambda: got.extend(customers()) or order_events.extend(orders()) or (
        len(got) >= 5 and len(order_events) >= 2), timeout=10), (got, order_events)
    names = [(e["event"], e["email"]) for e in got]
    assert ("customer.created", "ann@x.com") in names and ("customer.updated", "ann@x.com") in names
    assert ("customer.created", "bob@x.com") in names and ("customer.created", "cat@x.com") in names
    assert all(e["customerId"] for e in got) and len(got) == 5  # ann created, updated; bob; ann again; cat
    assert [e["event"] for e in order_events] == ["order.created", "order.created"]
    assert order_events[0]["orderId"] == single["_id"]


def test_a_csv_import_is_queued_on_rabbitmq_and_run_by_a_worker(broker_app):
    import io

    from models import ImportJob

    client = signed_in(broker_app, make_user(MARKETER, email="m@example.com"))
    text = "name,email\n" + "".join(f"New {i},new{i}@shop.com\n" for i in range(25)) + "Bad,bad\n"
    queued = client.post("/api/imports", data={"type": "customers", "file": (io.BytesIO(text.encode()), "p.csv")},
                         content_type="multipart/form-data")
    assert queued.status_code == 202 and queued.get_json()["status"] == "queued"
    job_id = queued.get_json()["_id"]
    assert Customer.objects(email__startswith="new").count() == 0  # the request only queued it

    from services.queue import import_queue

    celery = broker_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert not _wait_for(lambda: ImportJob.objects.get(pk=job_id).status != "queued", timeout=2)  # not its queue
    with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10,
                      queues=[import_queue(broker_app.config)]):  # the imports' own worker
        done = _wait_for(lambda: ImportJob.objects.get(pk=job_id).status == "completed")
    job = client.get(f"/api/imports/{job_id}").get_json()
    assert done, job
    assert job["counts"] == {"read": 26, "inserted": 25, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 1}
    assert Customer.objects(email__startswith="new").count() == 25
