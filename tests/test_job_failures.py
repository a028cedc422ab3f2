"""No job strands its campaign or import: a temporary error is retried with backoff, any other (or
one retried enough) ends the job within seconds as ``failed`` with ``lastError``, never by waiting for
the sweep minutes later."""
import pytest
from pymongo.errors import AutoReconnect, OperationFailure

import engine
import engine.tasks  # noqa: F401 - registers the Celery tasks, as a worker does
from engine import store
from models import Campaign, Customer, Delivery
from models.roles import MARKETER
from tests.factories import make_user, signed_in

PEOPLE = 12


@pytest.fixture
def shop(make_app):
    app = make_app(VENDOR_RECEIPTS=False, DISPATCH_BATCH_SIZE=5, ENGINE_JOB_RETRIES=3,
                   ENGINE_JOB_RETRY_BASE_S=0.01)
    Customer._get_collection().insert_many([{"name": f"P{i}", "email": f"p{i}@shop.test"} for i in range(PEOPLE)])
    return app, signed_in(app, make_user(MARKETER, email="m@example.com"))


def send(client):
    campaign_id = client.post("/api/campaigns", json={"name": "Hi", "message": "Hi {{firstName}}",
                                                      "rules": []}).get_json()["_id"]
    assert client.post(f"/api/campaigns/{campaign_id}/send").status_code == 202
    assert engine.wait_idle(client.application, timeout=20)
    return client.get(f"/api/campaigns/{campaign_id}").get_json()


def failing(monkeypatch, errors):
    """``store.insert_records`` raises each of ``errors`` in turn, then works."""
    insert = store.insert_records
    left = list(errors)

    def insert_records(docs):
        if left:
            raise left.pop(0)
        return insert(docs)

    monkeypatch.setattr(store, "insert_records", insert_records)
    return left


TOO_LARGE = OperationFailure("Expression tree is too large (maximum depth 1000)", code=2)


def test_a_planning_error_fails_the_campaign_at_once_with_the_reason(shop, monkeypatch):
    app, client = shop
    failing(monkeypatch, [TOO_LARGE])
    campaign = send(client)
    assert campaign["status"] == "failed"
    assert campaign["lastError"] == "sending failed: OperationFailure: Expression tree is too large (maximum depth 1000)"
    retried = client.post(f"/api/campaigns/{campaign['_id']}/retry-failed")  # and it can go on from there
    assert retried.status_code == 202 and engine.wait_idle(app, timeout=20)
    done = client.get(f"/api/campaigns/{campaign['_id']}").get_json()
    assert done["status"] == "completed" and done["stats"]["sent"] == PEOPLE


@pytest.mark.parametrize("error", [AutoReconnect("primary stepped down"),
                                   OperationFailure("interrupted at shutdown", code=11600)])
def test_a_temporary_error_is_retried_and_the_campaign_completes(shop, monkeypatch, error):
    app, client = shop
    left = failing(monkeypatch, [error, error])
    campaign = send(client)
    assert left == []
    assert campaign["status"] == "completed" and campaign["stats"]["sent"] == PEOPLE
    assert Delivery.objects.count() == PEOPLE


def test_a_temporary_error_that_does_not_pass_fails_after_the_retries(shop, monkeypatch):
    app, client = shop
    error = OperationFailure("not primary", code=10107)
    failing(monkeypatch, [error] * 10)
    campaign = send(client)
    assert campaign["status"] == "failed" and "not primary" in campaign["lastError"]


def test_a_worker_task_fails_its_campaign_too(shop, monkeypatch):
    """The Celery task (run here by apply(), as a worker would) fails the campaign with the reason."""
    app, client = shop
    campaign_id = client.post("/api/campaigns", json={"name": "Hi", "message": "Hi", "rules": []}).get_json()["_id"]
    Campaign.objects(pk=campaign_id).update_one(set__status="sending")
    failing(monkeypatch, [TOO_LARGE])
    task = app.extensions["celery"].tasks["crm.plan_campaign"]
    with app.app_context():
        outcome = task.apply(args=[campaign_id], throw=False)
    assert outcome.failed()
    campaign = Campaign.objects.get(pk=campaign_id)
    assert campaign.status == "failed" and "Expression tree is too large" in campaign.last_error


def test_an_import_meeting_a_temporary_error_is_retried_and_completes(shop, monkeypatch):
    app, client = shop
    from engine import ingest

    upsert, left = ingest.upsert_customers, [OperationFailure("interrupted", code=11602)]

    def flaky(*args, **kwargs):
        if left:
            raise left.pop()
        return upsert(*args, **kwargs)

    monkeypatch.setattr(ingest, "upsert_customers", flaky)
    answer = client.post("/api/imports", data={"type": "customers", "file": (
        __import__("io").BytesIO(b"name,email\nAnn,ann@shop.test\n"), "people.csv")},
        content_type="multipart/form-data")
    assert answer.status_code == 202
    assert engine.wait_idle(app, timeout=20)
    job = client.get(f"/api/imports/{answer.get_json()['_id']}").get_json()
    assert job["status"] == "completed" and job["counts"]["inserted"] == 1
