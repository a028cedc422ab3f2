"""A small shop's day one, end to end on whichever store the tier uses: customers and orders in bulk,
a campaign to all of them with every receipt coming back over HTTP, a re-import of the same file.
No 5xx and no error in the log; every recipient one record with a final status; counts that add up;
totals equal to the orders."""
import io
import logging
import os
import threading

import pytest
from werkzeug.serving import make_server

import engine
from models import Customer, Delivery, Order
from models.roles import MARKETER
from tests.factories import make_user, signed_in
from tests.processes import wait_until

WIRE = bool(os.environ.get("MONGO_URI") or os.environ.get("MONGODB_URI"))
# The stand-in scans a collection for each query, so the wire tier runs a smaller shop; both run with
# MONGO_MAX_IN=50, so every look-up of a batch is split into several queries.
CUSTOMERS = 600 if WIRE else 3000
UNSUBSCRIBED = CUSTOMERS // 10


@pytest.fixture
def shop_app(make_app):
    app = make_app(VENDOR_WEBHOOK_SECRET="webhook-secret-for-tests", VENDOR_RECEIPTS=True,
                   VENDOR_RECEIPT_DELAY_S=0.05, MONGO_MAX_IN=50, SCHEDULER_ENABLED=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app.config["VENDOR_RECEIPT_URL"] = f"http://127.0.0.1:{server.server_port}/api/delivery-receipts"
    yield app
    server.shutdown()


def test_a_shop_loads_its_data_sends_to_everyone_and_every_count_adds_up(shop_app, caplog):
    client = signed_in(shop_app, make_user(MARKETER, email="owner@shop.test"))
    answers = []

    def call(method, path, **kwargs):
        response = client.open(path, method=method, **kwargs)
        answers.append((path, response.status_code))
        assert response.status_code < 500, (path, response.get_json())
        return response

    people = [{"name": f"Customer {i}", "email": f"c{i}@shop.test", "subscribed": i >= UNSUBSCRIBED}
              for i in range(CUSTOMERS)]
    with caplog.at_level(logging.ERROR):
        loaded = call("POST", "/api/customers/bulk", json=people).get_json()
        assert loaded["counts"]["created"] == CUSTOMERS
        ids = [item["id"] for item in loaded["items"]]
        orders = [{"amount": 5 + i % 50, "externalId": f"order-{i}",
                   **({"customerEmail": f"C{i % CUSTOMERS}@shop.test"} if i % 2 else {"customerId": ids[i % CUSTOMERS]})}
                  for i in range(2 * CUSTOMERS)]
        for start in range(0, len(orders), CUSTOMERS):
            chunk = orders[start:start + CUSTOMERS]
            assert call("POST", "/api/orders/bulk", json=chunk).get_json()["counts"]["created"] == len(chunk)
        again = call("POST", "/api/orders/bulk", json=orders[:100]).get_json()["counts"]  # sent twice
        assert again["skipped"] == 100 and again["created"] == 0

        campaign = call("POST", "/api/campaigns", json={"name": "Everyone", "message": "Hi {{firstName}}",
                                                        "rules": []}).get_json()
        call("POST", f"/api/campaigns/{campaign['_id']}/send")
        assert engine.wait_idle(shop_app, timeout=300)
        recipients = CUSTOMERS - UNSUBSCRIBED
        try:
            wait_until(lambda: Delivery.objects(status__in=["PENDING", "SENT"]).count() == 0, 300, interval=0.5,
                       what="every receipt applied")
        except TimeoutError as exc:  # say which records wait, and for what (a rare stall seen in full runs)
            left = Delivery._get_collection().aggregate([
                {"$match": {"status": {"$in": ["PENDING", "SENT"]}}},
                {"$group": {"_id": {"campaign": "$campaign", "status": "$status"}, "n": {"$sum": 1}}}])
            state = call("GET", "/api/campaigns/" + campaign["_id"]).get_json()
            raise AssertionError(f"{exc}: still waiting {list(left)}; campaign {campaign['_id']} is "
                                 f"{state.get('status')}, {state.get('stats')}") from exc

        csv = "name,email\n" + "".join(f"{p['name']},{p['email']}\n" for p in people)
        job = call("POST", "/api/imports", content_type="multipart/form-data",
                   data={"type": "customers", "file": (io.BytesIO(csv.encode()), "people.csv")}).get_json()
        assert engine.wait_idle(shop_app, timeout=300)
        reimported = call("GET", f"/api/imports/{job['_id']}").get_json()
        done = call("GET", f"/api/campaigns/{campaign['_id']}").get_json()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

    assert reimported["status"] == "completed"
    assert reimported["counts"] == {"read": CUSTOMERS, "inserted": 0, "updated": 0, "unchanged": CUSTOMERS,
                                    "skipped": 0, "failed": 0}
    assert done["status"] == "completed"
    stats = done["stats"]
    assert stats["pending"] + stats["sent"] + stats["delivered"] + stats["failed"] + stats["cancelled"] == stats["total"]
    assert stats["total"] == recipients and stats["suppressed"] == UNSUBSCRIBED
    assert stats["audienceSize"] == CUSTOMERS and stats["sent"] == stats["pending"] == 0
    records = Delivery._get_collection()
    assert records.count_documents({}) == recipients
    assert len(records.distinct("customer")) == recipients  # exactly one record each
    assert records.count_documents({"status": {"$in": ["DELIVERED", "FAILED"]}}) == recipients
    spent = list(Customer._get_collection().aggregate([{"$group": {"_id": None, "spend": {"$sum": "$totalSpend"},
                                                                   "visits": {"$sum": "$numVisits"}}}]))[0]
    ordered = list(Order._get_collection().aggregate([{"$group": {"_id": None, "amount": {"$sum": "$amount"},
                                                                  "n": {"$sum": 1}}}]))[0]
    assert (spent["spend"], spent["visits"]) == (ordered["amount"], ordered["n"]) == (
        sum(o["amount"] for o in orders), 2 * CUSTOMERS)
