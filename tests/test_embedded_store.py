"""The embedded store (mongomock) shared by web threads and engine threads: every access is safe."""
import logging
import os
import sys
import threading
import time

import pytest

import engine
from models import Campaign, Delivery
from tests.factories import seed_customers

pytestmark = pytest.mark.skipif(bool(os.environ.get("MONGO_URI") or os.environ.get("MONGODB_URI")),
                                reason="the embedded store's own locking (the wire tier has a real server)")
CUSTOMERS = 400


@pytest.fixture
def busy_switching():
    """Switch threads as often as possible, so unsafe interleavings happen within seconds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_threads_hammering_the_store_raise_nothing(make_app, caplog, busy_switching):
    """Planning and sending (engine threads), receipts, customer edits and list pages (request
    threads) at once: no exception anywhere, no 5xx, every campaign completes exactly once per
    recipient. Without the store's lock mongomock copied documents other threads were changing."""
    app = make_app(DISPATCH_BATCH_SIZE=20, VENDOR_RECEIPTS=False, ENGINE_THREADS=4,
                   VENDOR_WEBHOOK_SECRET="webhook-secret-for-tests", ENGINE_FLUSH_S=0)
    from models.roles import MARKETER
    from tests.factories import make_user, signed_in

    with app.app_context():
        seed_customers([{"name": f"P {i}", "email": f"p{i}@shop.test", "totalSpend": float(i)}
                        for i in range(CUSTOMERS)])
        user = make_user(MARKETER, email="m@example.com")
    client = signed_in(app, user)
    ids = []
    for n in range(3):
        created = client.post("/api/campaigns", json={"name": f"C{n}", "message": "Hi {{firstName}}",
                                                      "rules": []})
        ids.append(created.get_json()["_id"])
    problems, statuses = [], []
    done = threading.Event()

    def keep(work):
        def run():
            try:
                while not done.is_set():
                    work()
            except Exception as exc:  # noqa: BLE001 - the test reports every kind
                problems.append(repr(exc))
        return threading.Thread(target=run)

    def receipts():
        with app.app_context():
            sent = [(r.pk,) for r in Delivery.objects(status="SENT").only("id").limit(50)]
            if sent:
                engine.receipts.apply([(i, {"delivery_id": pk, "status": "DELIVERED",
                                            "timestamp": Campaign.objects.first().created_at})
                                       for i, (pk,) in enumerate(sent)])

    def pages():
        statuses.append(client.get("/api/customers?perPage=100&sort=-totalSpend").status_code)
        statuses.append(client.get(f"/api/campaigns/{ids[len(statuses) % 3]}/deliveries?perPage=100").status_code)

    def edits():  # subscribing adds and removes a field: documents change size while others copy them
        page = client.get(f"/api/customers?perPage=20&page={1 + len(statuses) % 20}").get_json()["items"]
        for customer in page:
            statuses.append(client.patch(f"/api/customers/{customer['_id']}",
                                         json={"subscribed": bool(len(statuses) % 2)}).status_code)

    workers = [keep(receipts), keep(pages), keep(edits)]
    for thread in workers:
        thread.start()
    with caplog.at_level(logging.ERROR):
        for campaign_id in ids:
            assert client.post(f"/api/campaigns/{campaign_id}/send").status_code == 202
        assert engine.wait_idle(app, timeout=120)
    done.set()
    for thread in workers:
        thread.join(30)
    assert problems == []
    assert statuses and all(status < 500 for status in statuses)
    assert [r.message for r in caplog.records if r.levelno >= logging.ERROR] == []
    with app.app_context():
        for campaign_id in ids:
            assert Campaign.objects.get(pk=campaign_id).status == "completed"
            stats = client.get(f"/api/campaigns/{campaign_id}").get_json()["stats"]
            assert Delivery.objects(campaign_id=campaign_id).count() + stats["suppressed"] == CUSTOMERS


def test_concurrent_writes_and_copies_of_the_same_documents_are_safe(app, busy_switching):
    """The interleaving behind the 500s, made certain: documents growing and shrinking (``$set`` and
    ``$unset``) while other threads bulk-write, read and aggregate them."""
    from mongoengine.connection import get_db
    from pymongo import UpdateOne

    collection = get_db()["hammer"]
    collection.insert_many([{"_id": i, "n": 0} for i in range(300)])
    problems, stop = [], time.monotonic() + 2

    def loop(work):
        def run():
            i = 0
            while time.monotonic() < stop and not problems:
                i += 1
                try:
                    work(i)
                except Exception as exc:  # noqa: BLE001
                    problems.append(repr(exc))
        return threading.Thread(target=run)

    threads = [loop(work) for work in (
        lambda i: collection.update_many({}, {"$set": {f"f{i % 50}": i}, "$unset": {f"f{(i + 25) % 50}": ""}}),
        lambda i: collection.bulk_write([UpdateOne({"_id": j}, {"$inc": {"n": 1}}) for j in range(0, 300, 7)]),
        lambda i: list(collection.find({"n": {"$gte": 0}})),
        lambda i: list(collection.aggregate([{"$group": {"_id": None, "n": {"$sum": "$n"}}}])),
    )]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []


# --- unique-index lookups: exactly mongomock's own answers ---------------------------------------------
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

KEYS = st.sampled_from(["a@x", "b@x", "c@x", "d@x"])
KEY_VALUES = st.one_of(KEYS, st.lists(KEYS, min_size=1, max_size=2), st.none())
SMALL = st.sampled_from([1, 2, 3])
IDS = st.sampled_from(list(range(6)))
FLAG = st.sampled_from([True, False, 1, None])  # only True is in the partial index
DOCS = st.fixed_dictionaries({"_id": IDS, "email": KEY_VALUES, "a": SMALL, "b": SMALL},
                             optional={"x": st.sampled_from(["x1", "x2"]), "due": FLAG})
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("insert"), DOCS),
    st.tuples(st.just("upsert"), KEYS, DOCS.map(lambda d: {k: v for k, v in d.items() if k != "_id"})),
    st.tuples(st.just("update_ids"), st.lists(IDS, max_size=3), st.fixed_dictionaries(
        {}, optional={"email": KEY_VALUES, "a": SMALL, "x": st.sampled_from(["x1", "x2"]), "due": FLAG})),
    st.tuples(st.just("unflag"), IDS),
    st.tuples(st.just("replace"), IDS, DOCS.map(lambda d: {k: v for k, v in d.items() if k != "_id"})),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("bulk"), st.lists(st.tuples(KEYS, SMALL), max_size=4)),
    st.tuples(st.just("reindex")),  # creating an index again (every start of the app does)
), max_size=25)


def _ids(documents):
    """Ids comparable across runs: an id the server made (an upsert's ObjectId) is just "new"."""
    from bson import ObjectId

    return sorted(("new" if isinstance(d["_id"], ObjectId) else str(d["_id"])) for d in documents)


def _run(operations):
    """Run ``operations`` on a fresh collection; every answer, error and the final documents."""
    import mongomock
    from pymongo import UpdateOne

    collection = mongomock.MongoClient()["differential"]["people"]
    collection.create_index("email", unique=True)
    collection.create_index([("a", 1), ("b", 1)], unique=True)
    collection.create_index("x", unique=True, sparse=True)
    collection.create_index([("due", 1), ("a", 1)], partialFilterExpression={"due": True})
    answers = []
    for operation, *args in operations:
        try:
            if operation == "insert":
                answers.append(str(collection.insert_one(dict(args[0])).inserted_id))
            elif operation == "upsert":
                result = collection.update_one({"email": args[0]}, {"$set": args[1]}, upsert=True)
                answers.append((result.matched_count, result.modified_count, result.upserted_id is not None))
            elif operation == "update_ids":
                if args[1]:
                    answers.append(collection.update_many({"_id": {"$in": args[0]}}, {"$set": args[1]}).modified_count)
            elif operation == "unflag":
                answers.append(collection.update_one({"_id": args[0]}, {"$unset": {"due": ""}}).modified_count)
            elif operation == "replace":
                answers.append(collection.replace_one({"_id": args[0]}, args[1]).modified_count)
            elif operation == "delete":
                answers.append(collection.delete_one({"email": args[0]}).deleted_count)
            elif operation == "reindex":
                collection.create_index([("a", 1), ("b", 1)], unique=True)
            elif operation == "bulk" and args[0]:
                answers.append(collection.bulk_write([UpdateOne({"email": e}, {"$set": {"b": b}}, upsert=True)
                                                      for e, b in args[0]], ordered=False).bulk_api_result["nUpserted"])
        except Exception as exc:  # noqa: BLE001 - both sides must fail alike
            answers.append(type(exc).__name__)
        for key in ["a@x", "b@x", "c@x", "d@x"]:
            answers.append(_ids(collection.find({"email": key})))
        for a in (1, 2, 3):
            answers.append(_ids(collection.find({"a": a, "b": 1})))
        answers.append(_ids(collection.find({"_id": {"$in": [0, 2, 4]}})))
        answers.append(_ids(collection.find({"due": True})))
        answers.append(_ids(collection.find({"due": True, "a": {"$in": [1, 2]}})))
        answers.append(_ids(collection.find({"email": {"$in": ["a@x", "c@x"]}, "a": {"$gte": 2}})))
        answers.append(_ids(collection.aggregate([{"$match": {"a": {"$gte": 2}}}, {"$project": {"_id": 1}}])))
        answers.append(_ids(collection.aggregate([{"$match": {"_id": {"$in": [0, 2, 4]}}}, {"$match": {"b": 1}}])))
    answers.append(sorted(repr({k: v for k, v in d.items() if k != "_id"}) for d in collection.find()))
    return answers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPERATIONS)
@example([  # a document written due, then not, then refused a write: found due exactly when it is
    ("insert", {"_id": 1, "email": "a@x", "a": 1, "b": 1, "due": True}),
    ("insert", {"_id": 2, "email": "b@x", "a": 2, "b": 1}),
    ("update_ids", [1], {"due": False}),
    ("update_ids", [1], {"due": True, "a": 2}),  # refused: (a, b) taken; document 1 stays not due
    ("update_ids", [1], {"due": True}),
    ("update_ids", [1], {"due": False, "a": 2}),  # refused: put back due, and found due
    ("unflag", 1),
])
@example([  # a failed update puts a document back; the maps must still find it under its old key
    ("insert", {"_id": 1, "email": "a@x", "a": 1, "b": 1}),
    ("insert", {"_id": 0, "email": None, "a": 1, "b": 1}),  # refused: (a, b) taken
    ("insert", {"_id": 0, "email": None, "a": 2, "b": 1}),
    ("update_ids", [0, 1], {"email": ["a@x"], "a": 1}),  # refused half-way, document 0 restored
])
def test_unique_lookups_and_leading_matches_answer_exactly_as_mongomocks_scan(operations):
    from mongomock.collection import Collection

    from models import embedded

    embedded.patch_mongomock()
    patched = _run(operations)
    saved = Collection._iter_documents, Collection._ensure_uniques, Collection.aggregate
    Collection._iter_documents = embedded.ORIGINAL["_iter_documents"]
    Collection._ensure_uniques = embedded.ORIGINAL["_ensure_uniques"]
    Collection.aggregate = embedded.ORIGINAL["aggregate"]  # every document copied, then the $match stage
    try:
        scanned = _run(operations)
    finally:
        Collection._iter_documents, Collection._ensure_uniques, Collection.aggregate = saved
    assert patched == scanned, operations


def test_two_threads_starting_one_scheduled_campaign_start_it_once(make_app, busy_switching, monkeypatch):
    """A conditional update is atomic on the embedded store too: two schedulers racing on one due
    campaign start it once (unlocked, mongomock started it twice in 24 of 40 rounds)."""
    from datetime import timedelta

    from engine import control, runner
    from models.base import utcnow

    app = make_app(SCHEDULER_ENABLED=False)
    queued = []
    monkeypatch.setattr(runner, "submit", lambda name, *args: queued.append(args[0]))
    with app.app_context():
        for _ in range(40):
            campaign = Campaign(name="Due", message="Hi", rules={"op": "AND", "rules": []}, status="scheduled",
                                scheduled_at=utcnow() - timedelta(seconds=1)).save()
            barrier = threading.Barrier(2)

            def race():
                with app.app_context():
                    barrier.wait()
                    control.start_due()

            racers = [threading.Thread(target=race) for _ in range(2)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            assert queued.count(str(campaign.pk)) == 1
