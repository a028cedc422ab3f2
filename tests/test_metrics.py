"""``GET /metrics``: Prometheus text behind METRICS_TOKEN; the counters equal the delivery records they
count, within one process and added up over every gunicorn worker and the Celery worker."""
import io
import re
import secrets
import time

import pymongo
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import ServerSelectionTimeoutError

import engine
from models import Delivery
from models.delivery import DELIVERED, FAILED
from tests.factories import make_user, seed_customers, signed_in
from tests.processes import free_port, wait_until
from tests.test_engine import SECRET, _signed
from tests.test_procfile import run_procfile

TOKEN = "metrics-token-for-tests-" + "x7Qp2vL9"
NOW = "2026-12-01T10:00:00Z"


def samples(text):
    """``{(sample name, frozenset(labels)): value}`` of an exposition."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


@pytest.fixture
def shop(make_app):
    app = make_app(METRICS_TOKEN=TOKEN, VENDOR_WEBHOOK_SECRET=SECRET, VENDOR_RECEIPTS=False)
    seed_customers([{"name": f"P{i}", "email": f"p{i}@shop.com"} for i in range(6)])
    return signed_in(app, make_user())


def test_metrics_are_off_without_a_token(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x",
                                           f"Bearer {TOKEN[:-1]}", "Bearer é"])
def test_only_the_token_reads_metrics(shop, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = shop.application.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401 and response.get_json()["error"].startswith("Metrics need")


def test_a_signed_in_user_is_not_enough(shop):
    assert shop.get("/metrics").status_code == 401


def test_requests_are_timed_by_route_template_never_by_raw_path(shop):
    before = scrape(shop)
    for _ in range(3):
        assert shop.get("/api/customers/64b7f0000000000000000000").status_code == 404
    text = scrape(shop)
    route = "/api/customers/<id:customer_id>"
    labels = {"method": "GET", "route": route, "status": "404"}
    assert value(text, "crm_http_request_duration_seconds_count", **labels) - value(
        before, "crm_http_request_duration_seconds_count", **labels) == 3
    assert "64b7f0000000000000000000" not in text
    assert shop.get("/no/such/page").status_code == 404
    assert value(scrape(shop), "crm_http_request_duration_seconds_count", method="GET", route="<unmatched>",
                 status="404") >= 1


def test_message_and_receipt_counters_equal_the_delivery_records(shop):
    """A campaign, then receipts: delivered, failed, one repeated, one for no message."""
    before = scrape(shop)
    created = shop.post("/api/campaigns", json={"name": "News", "text": "Hi", "rules": []}).get_json()
    assert shop.post(f"/api/campaigns/{created['_id']}/send").status_code == 202
    assert engine.wait_idle(shop.application, 30)
    ids = [str(d.pk) for d in Delivery.objects(campaign_id=created["_id"]).order_by("id")]
    receipts = [{"deliveryId": i, "status": DELIVERED if n % 3 else FAILED, "timestamp": NOW, "error": "x"}
                for n, i in enumerate(ids)]
    receipts[1]["complaint"] = True
    assert _signed(shop, receipts).status_code == 200
    again = _signed(shop, receipts[:2] + [{"deliveryId": "64b7f0000000000000000000", "status": DELIVERED,
                                           "timestamp": NOW}]).get_json()
    assert (again["unchanged"], again["unknown"]) == (2, 1)
    after = scrape(shop)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    records = Delivery.objects(campaign_id=created["_id"])
    assert delta("crm_messages_total", outcome="handed_off") == records.filter(sent_at__ne=None).count() == 6
    for status, count in ((DELIVERED, 4), (FAILED, 2)):
        applied = delta("crm_receipts_total", status=status, result="applied")
        assert applied == records.filter(status=status).count() == count
    assert delta("crm_receipts_total", status=FAILED, result="unchanged") == 1
    assert delta("crm_receipts_total", status=DELIVERED, result="unchanged") == 1
    assert delta("crm_receipts_total", status=DELIVERED, result="unknown") == 1
    assert delta("crm_complaints_total") == 1
    assert value(after, "crm_campaigns", status="completed") == 1
    assert value(after, "crm_campaigns", status="draft") == 0


def test_a_message_that_cannot_be_sent_counts_as_failed(shop, monkeypatch):
    before = scrape(shop)
    monkeypatch.setattr("engine.content.build", lambda *a, **k: (_ for _ in ()).throw(ValueError("broken")))
    created = shop.post("/api/campaigns", json={"name": "Broken", "text": "Hi", "rules": []}).get_json()
    shop.post(f"/api/campaigns/{created['_id']}/send")
    assert engine.wait_idle(shop.application, 30)
    after = scrape(shop)
    failed = Delivery.objects(campaign_id=created["_id"], status=FAILED, sent_at=None).count()
    assert failed == 6
    failed_now = value(after, "crm_messages_total", outcome="failed")
    assert failed_now - value(before, "crm_messages_total", outcome="failed") == 6


def test_import_rows_are_counted_by_outcome(shop):
    before = scrape(shop)
    text = "name,email\nAda,ada@shop.com\nBob,not-an-address\nP0,p0@shop.com\n"
    upload = shop.post("/api/imports", content_type="multipart/form-data",
                       data={"type": "customers", "file": (io.BytesIO(text.encode()), "people.csv")})
    assert upload.status_code == 202
    assert engine.wait_idle(shop.application, 30)
    job = shop.get(f"/api/imports/{upload.get_json()['_id']}").get_json()
    after = scrape(shop)
    for outcome in ("inserted", "failed", "unchanged", "updated"):
        assert value(after, "crm_import_rows_total", type="customers", outcome=outcome) - value(
            before, "crm_import_rows_total", type="customers", outcome=outcome) == job["counts"][outcome], outcome
    assert job["counts"]["inserted"] == 1 and job["counts"]["failed"] == 1


def test_a_database_outage_is_counted_and_the_scrape_still_answers(shop, monkeypatch):
    before = scrape(shop)

    def unreachable(*args, **kwargs):
        raise ServerSelectionTimeoutError("down")

    monkeypatch.setattr("controllers.customers.list_customers", unreachable)
    assert shop.get("/api/customers").status_code == 503
    monkeypatch.setattr("controllers.metrics._by_status", unreachable)
    after = scrape(shop)
    assert value(after, "crm_database_errors_total", where="request") - value(
        before, "crm_database_errors_total", where="request") == 1
    assert "crm_campaigns" not in after  # left out; the counters are served
    assert value(scrape(shop), "crm_database_errors_total", where="metrics") >= 1  # counted for the next scrape


@pytest.mark.own_processes
def test_counters_add_up_over_every_process_to_the_delivery_records(mongo_standin, redis_url, rabbitmq_url,
                                                                     tmp_path):
    """Two gunicorn workers and a Celery worker sharing PROMETHEUS_MULTIPROC_DIR (the Procfile, with
    honcho): the worker hands off and the web applies receipts, some of them bounces; every scrape,
    whichever gunicorn worker answers it, reports the deployment's totals, equal to the records."""
    port = free_port()
    webhook = secrets.token_urlsafe(32)
    settings = dict(METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
                    VENDOR_SUCCESS_RATE=0.7, VENDOR_WEBHOOK_SECRET=webhook, VENDOR_RECEIPT_DELAY_S=0.2,
                    VENDOR_RECEIPT_URL=f"http://127.0.0.1:{port}/api/delivery-receipts")
    (tmp_path / "metrics").mkdir()
    with run_procfile(mongo_standin, redis_url, rabbitmq_url, tmp_path, port=port, **settings) as running:
        base, session, process, uri = running
        people = [{"name": f"P{i}", "email": f"p{i}@shop.example"} for i in range(40)]
        assert session.post(f"{base}/api/customers/bulk", json=people).json()["counts"]["created"] == 40
        campaign = session.post(f"{base}/api/campaigns", json={"name": "Now", "text": "Hi", "rules": []}).json()
        assert session.post(f"{base}/api/campaigns/{campaign['_id']}/send").status_code == 202
        records = pymongo.MongoClient(uri).get_default_database().communication_logs

        headers = {"Authorization": f"Bearer {TOKEN}"}
        during = []

        def receipted():  # every record has its receipt: DELIVERED or FAILED, none SENT or PENDING
            # scraped during the campaign: a hand-off is counted just after its record is written, so
            # the counter never runs ahead of the records
            text = requests.get(f"{base}/metrics", headers=headers, timeout=10).text
            during.append(value(text, "crm_messages_total", outcome="handed_off"))
            assert during[-1] <= records.count_documents({"sentAt": {"$ne": None}})
            return records.count_documents({}) == 40 and records.count_documents(
                {"status": {"$nin": [DELIVERED, FAILED]}}) == 0

        wait_until(receipted, 90, interval=0.3, what="every receipt")
        assert during == sorted(during)  # never went down across workers and scrapes
        expected = {("crm_messages_total", "handed_off"): records.count_documents({"sentAt": {"$ne": None}}),
                    (DELIVERED, "applied"): records.count_documents({"status": DELIVERED}),
                    (FAILED, "applied"): records.count_documents({"status": FAILED})}
        assert expected[(FAILED, "applied")] > 0 and expected[(DELIVERED, "applied")] > 0  # a campaign with failures
        for _ in range(12):  # several scrapes: both workers answer some, all say the same
            response = requests.get(f"{base}/metrics", headers=headers, timeout=10)
            assert response.status_code == 200
            text = response.text
            assert value(text, "crm_messages_total", outcome="handed_off") == expected[("crm_messages_total",
                                                                                         "handed_off")] == 40
            for status in (DELIVERED, FAILED):
                applied = value(text, "crm_receipts_total", status=status, result="applied")
                assert applied == expected[(status, "applied")]
            assert value(text, "crm_http_request_duration_seconds_count", method="POST",
                         route="/api/campaigns/<id:campaign_id>/send", status="202") == 1
            assert value(text, "crm_campaigns", status="completed") == 1
            assert value(text, "crm_broker_up") == 1  # RabbitMQ answered the scrape
            waiting = {dict(labels)["queue"]: count for (name, labels), count in samples(text).items()
                       if name == "crm_queue_messages"}
            assert any(queue.startswith("crm-procfile-") for queue in waiting) and all(
                count == 0 for count in waiting.values())  # the worker's queue, empty once all is sent
            time.sleep(0.05)
        served = {re.search(r"pid\": (\d+)", line).group(1) for line in process.output().splitlines()
                  if '"path": "/metrics"' in line and re.search(r"pid\": (\d+)", line)}
        assert len(served) == 2, "both gunicorn workers answered a scrape"


def test_a_receipt_that_overtakes_the_sender_counts_its_hand_off_once(shop):
    """A receipt for a record still PENDING (the vendor answered before the sender wrote its outcome)
    marks it sent: that hand-off is counted there, and the sender's later write, which only touches
    PENDING records, counts nothing again."""
    before = scrape(shop)
    created = shop.post("/api/campaigns", json={"name": "Slow", "text": "Hi", "rules": [],
                                                "messagesPerSecond": 0.1}).get_json()
    assert shop.post(f"/api/campaigns/{created['_id']}/send").status_code == 202
    wait_until(lambda: Delivery.objects(campaign_id=created["_id"]).count() == 6, 30, what="the plan")
    deferred = lambda text: value(text, "crm_messages_deferred_total", reason="rate_limit") - value(  # noqa: E731
        before, "crm_messages_deferred_total", reason="rate_limit")
    # the second message waits for its slot at the campaign's pace (waited for: the sender's thread may
    # not have reached it yet when the plan is written)
    wait_until(lambda: deferred(scrape(shop)) >= 1, 30, what="the sender waiting for the second slot")
    pending = [str(d.pk) for d in Delivery.objects(campaign_id=created["_id"], status="PENDING")]
    assert len(pending) >= 4  # one a ten seconds: most are waiting for their slot
    receipts = [{"deliveryId": i, "status": DELIVERED, "timestamp": NOW} for i in pending]
    assert _signed(shop, receipts).status_code == 200
    assert shop.post(f"/api/campaigns/{created['_id']}/cancel").status_code in (200, 202)
    assert engine.wait_idle(shop.application, 60)
    after = scrape(shop)
    handed_off = value(after, "crm_messages_total", outcome="handed_off") - value(
        before, "crm_messages_total", outcome="handed_off")
    assert handed_off == Delivery.objects(campaign_id=created["_id"], sent_at__ne=None).count() >= len(pending)
    assert deferred(after) >= 1  # the second message waited for its slot at the campaign's pace
