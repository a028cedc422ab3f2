"""WSGI apps for the HTTP benchmark, each a gunicorn app factory seeding identical data into its own
embedded store (mongomock) when it starts, so every side runs the same query on the same data:

    gunicorn 'bench.apps:crm()'      the CRM as shipped (API key auth, policy, schemas, logging setup)
    gunicorn 'bench.apps:bare()'     a bare Flask app: the same queries and writes, the same JSON
    gunicorn 'bench.apps:memory()'   a bare Flask route returning the CRM's JSON bytes from memory

``BENCH_API_KEY`` is the key the CRM accepts (the bare apps take none); ``BENCH_CUSTOMERS`` (1,000)
how many customers are seeded. One gunicorn worker each (the embedded store lives in one process).
"""
import os
from datetime import datetime, timedelta

from bson import ObjectId

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000"))
ORDER_CUSTOMER = ObjectId("64b7f0000000000000000001")


def _customers():
    start = datetime(2024, 1, 1)
    docs = [{"_id": ObjectId(f"64b7f{i + 1:019x}"), "name": f"Customer {i}", "email": f"c{i}@example.com",
             "totalSpend": float(i % 1000), "numVisits": i % 7, "tags": ["vip"] if i % 10 == 0 else [],
             "lastVisitDate": start + timedelta(hours=i), "createdAt": start + timedelta(minutes=i),
             "updatedAt": start + timedelta(minutes=i)} for i in range(CUSTOMERS)]
    return docs


def crm():
    """The CRM app on the embedded store, seeded; an admin whose API key is ``BENCH_API_KEY``."""
    from app import create_app
    from models import ApiKey, Customer, User
    from security.api_keys import hash_key

    app = create_app({"APP_ENV": "development", "LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": False,
                      "SCHEDULER_ENABLED": False, "VENDOR_RECEIPTS": False,
                      "SECRET_KEY": "bench-secret-" + "x" * 40})
    with app.app_context():
        Customer._get_collection().insert_many(_customers())
        Customer.ensure_indexes()
        user = User(google_id="bench", email="bench@example.com", display_name="Bench", role="admin").save()
        key = os.environ["BENCH_API_KEY"]
        ApiKey(name="bench", prefix=key[:12], key_hash=hash_key(key), role="admin", user_id=user.pk).save()
    return app


def _bare_store():
    import mongomock

    db = mongomock.MongoClient()["bench"]
    db.customers.insert_many(_customers())
    db.customers.create_index("email", unique=True)
    db.customers.create_index([("createdAt", -1), ("_id", -1)])
    return db


def _iso(value):
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def bare():
    """Flask alone: ``GET /api/customers`` runs the CRM's query (count, sort, skip, limit) and returns
    the same JSON; ``POST /api/orders`` does the same ``insert_one`` + ``update_one``."""
    from flask import Flask, jsonify, request

    app = Flask("bare")
    app.json.sort_keys = False
    db = _bare_store()

    @app.get("/api/customers")
    def customers():
        page, per_page = int(request.args.get("page", 1)), int(request.args.get("per_page", 20))
        total = db.customers.count_documents({})
        docs = db.customers.find({}).sort([("createdAt", -1), ("_id", -1)]).skip((page - 1) * per_page).limit(per_page)
        items = [{"_id": str(d["_id"]), "name": d["name"], "email": d["email"], "totalSpend": d["totalSpend"],
                  "numVisits": d["numVisits"], "tags": d["tags"], "subscribed": d.get("subscribed", True),
                  "unsubscribedAt": _iso(d.get("unsubscribedAt")), "lastVisitDate": _iso(d.get("lastVisitDate")),
                  "createdAt": _iso(d["createdAt"]), "updatedAt": _iso(d["updatedAt"])} for d in docs]
        return jsonify({"items": items, "total": total, "page": page, "perPage": per_page, "per_page": per_page})

    @app.post("/api/orders")
    def orders():
        body = request.get_json()
        customer, amount = ObjectId(body["customerId"]), float(body["amount"])
        now = datetime.utcnow()
        order = {"customer": customer, "amount": amount, "date": now, "createdAt": now}
        db.orders.insert_one(order)
        db.customers.update_one({"_id": customer}, {"$inc": {"totalSpend": amount, "numVisits": 1},
                                                    "$max": {"lastVisitDate": now}, "$set": {"updatedAt": now}})
        return jsonify({"_id": str(order["_id"]), "customerId": str(customer), "amount": amount,
                        "date": _iso(now), "createdAt": _iso(now)}), 201

    return app


def memory():
    """A bare route returning, from memory, the bytes the CRM answers to the benchmark's list request."""
    from flask import Flask, Response

    crm_app = crm()
    client = crm_app.test_client()
    body = client.get("/api/customers?per_page=50",
                      headers={"Authorization": f"Bearer {os.environ['BENCH_API_KEY']}"}).get_data()
    app = Flask("memory")

    @app.get("/api/customers")
    def customers():
        return Response(body, mimetype="application/json")

    return app


# --- opens and clicks (bench/tracking.py) ---------------------------------------------------------------
TRACKED_ENV = "BENCH_TRACKED_NOW"  # how many records the tracking apps hold (bench/tracking.py sets it)
TRACKING_CAMPAIGN = ObjectId("64b7f1000000000000000001")
TRACKING_HTML = '<p>Hi</p><a href="https://shop.example/a">A</a><a href="https://shop.example/b">B</a>'
SENT_AT = datetime(2024, 1, 1)


def tracked_deliveries(n=None):
    """``n`` (else ``$BENCH_TRACKED_NOW``, else 1,000) delivery records of one campaign, handed off
    long ago (people read later)."""
    n = int(os.environ.get(TRACKED_ENV, "1000")) if n is None else n
    return [{"_id": ObjectId(f"64b7f2{i + 1:018x}"), "campaign": TRACKING_CAMPAIGN,
             "customer": ObjectId(f"64b7f{i + 1:019x}"), "email": f"c{i}@example.com", "status": "DELIVERED",
             "vendorMessageId": f"<{i}@crm.local>", "attempts": 1, "batch": "bench", "createdAt": SENT_AT,
             "sentAt": SENT_AT} for i in range(n)]


def crm_tracking():
    """The CRM as shipped with one sent campaign (two tracked links) and its delivery records."""
    from app import create_app
    from models import Campaign, Delivery

    app = create_app({"APP_ENV": "development", "LOG_LEVEL": "WARNING", "RATELIMIT_ENABLED": False,
                      "SCHEDULER_ENABLED": False, "VENDOR_RECEIPTS": False,
                      "SECRET_KEY": "bench-secret-" + "x" * 40})
    with app.app_context():
        Campaign(id=TRACKING_CAMPAIGN, name="Bench", message="Hi", html=TRACKING_HTML,
                 links=["https://shop.example/a", "https://shop.example/b"], status="completed",
                 rules={"op": "AND", "rules": []}).save(force_insert=True)
        Delivery.ensure_indexes()  # first, as at every start: the store keeps its unique-key maps from here on
        Delivery._get_collection().insert_many(tracked_deliveries())
    return app


def _delivery_indexes():
    """The delivery collection's index specs as the CRM declares them (MongoEngine's, resolved)."""
    from models import Delivery

    return Delivery._meta["index_specs"]


def bare_tracking():
    """Flask alone, the same delivery records in the same (patched) embedded store, doing **the same
    single update** the CRM's tracking does (``engine.tracking.event_update``: counts, times, the
    event on the capped log; the event a fixed one for a person on a desktop): the pixel does that
    ``update_one`` and answers the same GIF; the link does the same for a click and redirects to the
    link at that index. What the CRM does beyond it (the token's signature, classifying the agent,
    reading the record back to mark bursts, the app's hooks) is what the ratio measures."""
    import mongomock
    from flask import Flask, Response, redirect

    from engine.tracking import CLICK, HOUR, OPEN, event_update
    from models.base import utcnow
    from models.embedded import patch_mongomock
    from routes.tracking import PIXEL

    patch_mongomock()  # the same store as the CRM's: an _id is looked up, not scanned for
    app = Flask("bare")
    deliveries = mongomock.MongoClient()["bench"]["communication_logs"]
    for spec in _delivery_indexes():  # the CRM's indexes: every update maintains the same ones
        deliveries.create_index(spec["fields"], unique=spec.get("unique", False))
    deliveries.insert_many(tracked_deliveries())
    links = ["https://shop.example/a", "https://shop.example/b"]
    cap = 100  # TRACKING_EVENT_LOG's default

    def event(kind, link=None):
        now = utcnow()
        found = {"kind": "open" if kind == OPEN else "click", "at": now, "agent": "desktop", "ip": "203.0.113.0/24",
                 "method": "GET", "bot": False, "hour": now.strftime(HOUR)}
        if link is not None:
            found["link"] = link
        return found

    @app.get("/bare/o/<delivery>")
    def pixel(delivery):
        deliveries.update_one({"_id": ObjectId(delivery)}, event_update(OPEN, event(OPEN), cap))
        return Response(PIXEL, content_type="image/gif")

    @app.get("/bare/c/<delivery>/<int:index>")
    def click(delivery, index):
        deliveries.update_one({"_id": ObjectId(delivery)}, event_update(CLICK, event(CLICK, index), cap))
        return redirect(links[index], code=302)

    @app.get("/healthz")
    def health():
        return {"status": "ok"}

    return app
