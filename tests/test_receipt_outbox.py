"""The simulated vendor never loses a receipt: what the webhook does not accept waits in its outbox
and is posted again with backoff (time travels here: :meth:`ReceiptReporter.pump` takes the time)."""
import io
import json
import logging
import threading
from datetime import timedelta

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import engine
from models import Customer, Delivery
from models.base import utcnow
from models.roles import MARKETER
from tests.factories import make_user, signed_in

SECRET = "webhook-secret-for-tests"
PEOPLE = 20


class Gate:
    """The webhook behind a switch: 503 while ``down``; remembers the delivery ids it let through
    and the app accepted."""

    def __init__(self, app):
        self.app, self.down, self.accepted = app, True, []

    def __call__(self, environ, start_response):
        if self.down:
            return Response("down", status=503)(environ, start_response)
        body = Request(environ).get_data()
        environ["wsgi.input"] = io.BytesIO(body)  # the app reads it again
        status = []

        def remember(code, headers, *args):
            status.append(int(code.split()[0]))
            return start_response(code, headers, *args)

        answer = self.app(environ, remember)
        if status and 200 <= status[0] < 300:
            self.accepted.extend(receipt["deliveryId"] for receipt in json.loads(body))
        return answer


@pytest.fixture
def outage(make_app):
    app = make_app(VENDOR_WEBHOOK_SECRET=SECRET, VENDOR_RECEIPTS=True, VENDOR_RECEIPT_DELAY_S=3600,
                   VENDOR_RECEIPT_RETRY_MAX_S=30, VENDOR_RECEIPT_GIVE_UP_H=1)
    gate = Gate(app)
    server = make_server("127.0.0.1", 0, gate, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app.config["VENDOR_RECEIPT_URL"] = f"http://127.0.0.1:{server.server_port}/api/delivery-receipts"
    Customer._get_collection().insert_many([{"name": f"P{i}", "email": f"p{i}@shop.test"} for i in range(PEOPLE)])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = client.post("/api/campaigns", json={"name": "Hi", "message": "Hi", "rules": []}).get_json()
    client.post(f"/api/campaigns/{campaign['_id']}/send")
    assert engine.wait_idle(app, timeout=20)
    yield app, gate, engine.vendor(app).reporter
    server.shutdown()


def pump_until(app, reporter, start, seconds, step=5):
    """Run the reporter's rounds from ``start`` for ``seconds`` of simulated time."""
    with app.app_context():
        for elapsed in range(0, seconds + 1, step):
            reporter.pump(start + timedelta(seconds=elapsed))


def test_a_webhook_down_for_a_minute_gets_every_receipt_once_when_back(outage):
    app, gate, reporter = outage
    start = utcnow()
    pump_until(app, reporter, start, 60)  # a minute of refusals
    outbox = reporter._outbox()
    assert outbox.count_documents({}) == PEOPLE and gate.accepted == []
    assert Delivery.objects(status="SENT").count() == PEOPLE
    gate.down = False
    pump_until(app, reporter, start + timedelta(seconds=65), 120)
    assert sorted(gate.accepted) == sorted(str(d.pk) for d in Delivery.objects)  # each once
    assert outbox.count_documents({}) == 0
    assert Delivery.objects(status="SENT").count() == 0  # every recipient has its final status


def test_receipts_refused_past_the_give_up_time_are_dropped_with_an_error(outage, caplog):
    app, gate, reporter = outage
    start = utcnow()
    pump_until(app, reporter, start, 60)
    with caplog.at_level(logging.ERROR), app.app_context():
        reporter.pump(start + timedelta(hours=1, seconds=61))
    assert reporter._outbox().count_documents({}) == 0
    assert any(f"dropped {PEOPLE} receipts" in r.message for r in caplog.records)


def test_the_backoff_doubles_up_to_its_ceiling(outage):
    app, gate, reporter = outage
    reporter.delay_s = 1  # VENDOR_RECEIPT_DELAY_S; the ceiling VENDOR_RECEIPT_RETRY_MAX_S is 30
    now, waits = utcnow(), []
    with app.app_context():
        for _ in range(7):
            assert reporter.pump(now) == PEOPLE  # one batch, refused
            due = reporter._outbox().find_one()["dueAt"]
            waits.append(round((due - now).total_seconds()))
            assert reporter.pump(due - timedelta(seconds=1)) == 0  # not due yet: nothing posted
            now = due
    assert waits == [2, 4, 8, 16, 30, 30, 30]
