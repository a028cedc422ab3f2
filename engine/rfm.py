"""RFM: recency, frequency and monetary scores 1–5 by quintiles over the customers who ordered, and
the named segments they fall in.

- **Scores.** Among customers with at least one order (``numVisits`` ≥ 1), the cuts of each measure
  are its values at the 20th, 40th, 60th and 80th percentile (the last value of the lowest k fifths;
  recency: ``lastVisitDate``, frequency: ``numVisits``, monetary: ``totalSpend``), each read by the database as one sorted, skipped read on
  the measure's index. A score is 1 plus the number of cuts strictly below the customer's value, so
  customers at the lowest value all score 1 whatever the ties (most shops' customers ordered once:
  they share frequency 1, and the few who ordered more score higher). A customer with no order has
  no scores (``rfm`` absent).
- **Segments** (:data:`SEGMENTS`, a partition of the 125 score triples, written in the README).
- **Full pass** (:func:`full_pass`, on beat / the embedded poller every ``RFM_INTERVAL_H``, or
  ``flask rfm``): the cuts are stored in one state document, then each score is set by five
  ``update_many`` on the measure's ranges and each segment by one ``update_many`` per box: the
  database does the work, 4 writes per customer, nothing loaded into Python. One pass at a time
  (a lease on the state document), so two beats never run it twice.
- **Incremental** (:func:`rescore`): customers whose orders just arrived are scored with the stored
  cuts (one read of them and one bulk write), so a first order makes a customer ``new`` at once;
  recency drifts between passes (a day by default) and the next pass sets it right.
"""
import logging
from datetime import timedelta

from flask import current_app
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from models import Customer
from models.base import utcnow
from models.db import in_chunks
from models.rfm import STATE_ID, RfmState

log = logging.getLogger(__name__)
MEASURES = (("r", "lastVisitDate"), ("f", "numVisits"), ("m", "totalSpend"))
ORDERED = {"numVisits": {"$gte": 1}}
LEASE = timedelta(hours=1)
# (name, [(r range, f range, m range), ...]): disjoint boxes covering every (r, f, m) in 1..5
SEGMENTS = (
    ("champions", [((4, 5), (4, 5), (4, 5))]),
    ("loyal", [((3, 3), (4, 5), (1, 5)), ((4, 5), (4, 5), (1, 3))]),
    ("cannot_lose", [((1, 2), (4, 5), (1, 5))]),
    ("at_risk", [((1, 2), (3, 3), (1, 5))]),
    ("hibernating", [((1, 2), (1, 2), (1, 5))]),
    ("need_attention", [((3, 3), (1, 3), (1, 5))]),
    ("new", [((4, 5), (1, 1), (1, 5))]),
    ("promising", [((4, 5), (2, 3), (1, 5))]),
)
SEGMENT_NAMES = tuple(name for name, _ in SEGMENTS)


def score(value, cuts):
    """1 + how many of the four cuts are strictly below ``value``."""
    return 1 + sum(1 for cut in cuts if cut < value)


def segment_of(r, f, m):
    """The segment of a score triple."""
    for name, boxes in SEGMENTS:
        for (r_low, r_high), (f_low, f_high), (m_low, m_high) in boxes:
            if r_low <= r <= r_high and f_low <= f <= f_high and m_low <= m <= m_high:
                return name
    raise AssertionError((r, f, m))  # the boxes cover every triple (tests/test_rfm.py checks it)


def _collection():
    return Customer._get_collection()


def cuts():
    """``{r: [4 dates], f: [4 numbers], m: [4 numbers]}`` over the customers who ordered, read by
    the database (``{}`` when nobody has)."""
    collection = _collection()
    total = collection.count_documents(ORDERED)
    if not total:
        return {}
    found = {}
    for letter, field in MEASURES:
        found[letter] = []
        for k in range(1, 5):
            position = max(0, total * k // 5 - 1)  # the last of the lower k fifths
            doc = next(collection.find(ORDERED, {field: 1}).sort([(field, 1), ("_id", 1)])
                       .skip(position).limit(1), None)
            found[letter].append(doc.get(field) if doc else None)
    return found


def claim_due(now=None):
    """Take the periodic pass when it is due (its lease free); True when this caller runs it."""
    now = now or utcnow()
    try:  # due (or never run): moved on by a lease, so a second beat finds it not due
        RfmState._get_collection().update_one(
            {"_id": STATE_ID, "$or": [{"nextAt": {"$lte": now}}, {"nextAt": None}]},
            {"$set": {"nextAt": now + LEASE, "startedAt": now}}, upsert=True)
    except DuplicateKeyError:  # it exists and is not due (or another beat took it a moment ago)
        return False
    return True


def full_pass(now=None):
    """Score every customer who ordered, segment them, drop the scores of those who have no order;
    returns ``{"customers", "cuts"}``."""
    now = now or utcnow()
    found = cuts()
    collection = _collection()
    RfmState._get_collection().update_one(
        {"_id": STATE_ID}, {"$set": {"cuts": found, "computedAt": now}}, upsert=True)
    for letter, field in MEASURES:
        if not found:
            break
        bounds = found[letter]
        for s in range(1, 6):
            low, high = (bounds[s - 2] if s > 1 else None), (bounds[s - 1] if s < 5 else None)
            if low is not None and high is not None and not low < high:
                continue  # an empty range (tied cuts)
            rng = {}
            if low is not None:
                rng["$gt"] = low
            if high is not None:
                rng["$lte"] = high
            collection.update_many({**ORDERED, field: rng} if rng else dict(ORDERED),
                                   {"$set": {f"rfm.{letter}": s}})
    for name, boxes in SEGMENTS:
        for box in boxes:
            collection.update_many({**ORDERED, **_box(box)}, {"$set": {"rfm.segment": name}})
    collection.update_many({"numVisits": {"$not": {"$gte": 1}}, "rfm": {"$exists": True}}, {"$unset": {"rfm": ""}})
    interval = timedelta(hours=current_app.config["RFM_INTERVAL_H"])
    RfmState._get_collection().update_one({"_id": STATE_ID}, {"$set": {"nextAt": now + interval,
                                                                        "finishedAt": utcnow()}})
    customers = collection.count_documents(ORDERED) if found else 0
    log.info("RFM pass: %d customers scored", customers)
    return {"customers": customers, "cuts": found}


def _box(box):
    return {f"rfm.{letter}": {"$gte": low, "$lte": high} for letter, (low, high) in zip("rfm", box)}


def rescore(customer_ids):
    """Score these customers now with the stored cuts (their orders just changed); nothing before
    the first pass."""
    state = RfmState._get_collection().find_one({"_id": STATE_ID}, {"cuts": 1})
    found = (state or {}).get("cuts")
    if not found:
        return 0
    operations = []
    for chunk in in_chunks(list(dict.fromkeys(customer_ids))):
        for doc in _collection().find({"_id": {"$in": chunk}}, {field: 1 for _, field in MEASURES}):
            if (doc.get("numVisits") or 0) < 1 or doc.get("lastVisitDate") is None:
                operations.append(UpdateOne({"_id": doc["_id"]}, {"$unset": {"rfm": ""}}))
                continue
            r, f, m = (score(doc.get(field) or 0, found[letter]) for letter, field in MEASURES)
            operations.append(UpdateOne({"_id": doc["_id"]}, {"$set": {
                "rfm": {"r": r, "f": f, "m": m, "segment": segment_of(r, f, m)}}}))
    if operations:
        _collection().bulk_write(operations, ordered=False)
    return len(operations)


def summary():
    """The stored cuts, when they were computed, and how many customers each segment holds now."""
    state = RfmState._get_collection().find_one({"_id": STATE_ID}) or {}
    counts = {name: 0 for name in SEGMENT_NAMES}
    for row in _collection().aggregate([{"$match": {"rfm.segment": {"$in": list(SEGMENT_NAMES)}}},
                                        {"$group": {"_id": "$rfm.segment", "n": {"$sum": 1}}}]):
        counts[row["_id"]] = row["n"]
    return {"computed_at": state.get("computedAt"), "next_at": state.get("nextAt"),
            "cuts": state.get("cuts") or {}, "segments": counts}
