"""Flows in the production shape: gunicorn, Celery workers and beats on the real RabbitMQ, the MongoDB
stand-in over the wire, an SMTP server as the vendor (it records each message's Message-ID).

- 10,000 orders in one bulk call enter the thank-you flow once each; the worker running it is killed
  with SIGKILL mid-way and another finishes: every customer has exactly one message (one Message-ID:
  what the dead worker had in flight went again with its Message-ID, a provider's idempotency key).
- A cap of 2 per 7 days, two campaigns and an order-triggered flow racing on two Celery workers: no
  customer gets more than 2; the third is counted capped with the reason.
"""
import pytest
from bson import ObjectId
from pymongo.errors import PyMongoError

from tests.processes import flask_command, wait_until
from tests.test_production import sign_in, smtp_inbox, topology, worker  # noqa: F401 (fixtures)

pytestmark = pytest.mark.own_processes
THANKS = {"type": "send", "subject": "Thank you, {{ firstName | default(\"friend\") }}", "text": "For your order."}


def _seed(topology, customers):  # noqa: F811 (the fixture, passed on)
    seeded = flask_command("seed-demo", "--customers", str(customers), "--max-orders", "0", "--seed", "5",
                           env=topology["env"])
    assert seeded.returncode == 0, seeded.stderr
    return [str(c["_id"]) for c in topology["db"].customers.find({}, {"_id": 1})]


def _flow(session, base, steps):
    created = session.post(f"{base}/api/flows", json={"name": "Thanks", "trigger": {"type": "order.created"},
                                                       "steps": steps})
    assert created.status_code == 201, created.text
    ident = created.json()["_id"]
    assert session.post(f"{base}/api/flows/{ident}/activate").status_code == 200
    return ident


def _completed(db, flow):
    try:
        return db.flow_enrolments.count_documents({"flow": ObjectId(flow), "status": "completed"})
    except PyMongoError:  # the stand-in, busy with a long operation, did not answer in time: ask again
        return None


# the stand-in serves one operation at a time, each in Python: the bulk call's 10,000-document writes
# hold it for seconds (other processes wait longer than the 3 s a real server needs) and the request
# takes longer than gunicorn's 30 s default
@pytest.mark.topology_env(FLOW_BATCH=200, MONGO_TIMEOUT_MS=60000, GUNICORN_CMD_ARGS="--timeout 600",
                          DISPATCH_CLAIM_LEASE_S=20)
def test_ten_thousand_orders_thank_each_customer_once_across_a_killed_worker(topology):  # noqa: F811
    web, inbox, db = topology["web"], topology["inbox"], topology["db"]
    base, people = web.base, 10_000
    ids = _seed(topology, people)
    session, _ = sign_in(topology)
    flow = _flow(session, base, [THANKS])
    first = worker(topology, "w1", "--pool", "solo")
    response = session.post(f"{base}/api/orders/bulk", json=[{"customerId": pk, "amount": 12.5} for pk in ids],
                            timeout=600)
    assert response.status_code in (200, 207), response.text[:500]
    assert db.flow_enrolments.count_documents({"flow": ObjectId(flow)}) == people
    wait_until(lambda: inbox.count() >= 1500, 300, interval=0.05, what="1,500 thank-yous sent")
    first.kill()
    at_kill = inbox.count()
    worker(topology, "w2", "--pool", "prefork", "--concurrency", "2")
    topology["celery"]("beat", "beat", "-s", str(web.log_path.parent / "beat"), "--pidfile=")
    wait_until(lambda: _completed(db, flow) == people, 600, interval=1, what="every enrolment completed")
    assert at_kill < people, "the worker was killed after the flow had finished: nothing proven"
    received = inbox.by_recipient()
    emails = {c["email"] for c in db.customers.find({}, {"email": 1})}
    assert set(received) == emails
    assert all(len(set(message_ids)) == 1 for message_ids in received.values())
    resent = sum(len(message_ids) - 1 for message_ids in received.values())
    print(f"killed at {at_kill} sent; {resent} in-flight thank-yous re-sent with their Message-ID")
    assert resent <= 200  # at most one claimed batch was in flight
    assert db.communication_logs.count_documents({"flow": ObjectId(flow)}) == people
    stats = session.get(f"{base}/api/flows/{flow}/stats", timeout=60).json()
    assert stats["sent"] == people and stats["steps"][0]["outcomes"] == {"sent": people}


@pytest.mark.topology_env(FREQUENCY_CAP="2/168h")
def test_the_cap_holds_with_two_campaigns_and_a_flow_racing_on_two_workers(topology):  # noqa: F811
    web, inbox, db = topology["web"], topology["inbox"], topology["db"]
    base, people = web.base, 300
    ids = _seed(topology, people)
    session, _ = sign_in(topology)
    flow = _flow(session, base, [THANKS])
    worker(topology, "w1", "--pool", "prefork", "--concurrency", "2")
    worker(topology, "w2", "--pool", "prefork", "--concurrency", "2")
    campaigns = [session.post(f"{base}/api/campaigns", json={"name": name, "message": "Hi {{name}}",
                                                              "rules": []}).json()["_id"] for name in ("One", "Two")]
    for campaign in campaigns:
        assert session.post(f"{base}/api/campaigns/{campaign}/send").status_code == 202
    assert session.post(f"{base}/api/orders/bulk", json=[{"customerId": pk, "amount": 5} for pk in ids],
                        timeout=300).status_code in (200, 207)

    def settled():
        done = all(session.get(f"{base}/api/campaigns/{c}").json()["status"] in ("completed", "failed")
                   for c in campaigns)
        return done and _completed(db, flow) == people

    wait_until(settled, 300, interval=0.5, what="both campaigns and the flow finished")
    received = inbox.by_recipient()
    assert len(received) == people
    assert max(len(set(message_ids)) for message_ids in received.values()) == 2, "nobody gets more than 2"
    assert all(len(set(message_ids)) == 2 for message_ids in received.values())
    capped = db.communication_logs.count_documents({"error": "frequency cap: 2 messages in 168 h"})
    capped += db.flow_steps.count_documents({"flow": ObjectId(flow), "outcome": "capped"})
    assert capped == people
