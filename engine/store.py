"""The engine's reads and writes of delivery records and batch claims, in plain MongoDB operations.

Everything here is set-based (one ``update_many``/``bulk_write`` per group of records, counts and
groupings by aggregation), so the database filters and counts, never Python.
"""
import uuid

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from models import BatchClaim, Delivery
from models.db import in_chunks
from models.base import utcnow
from models.delivery import DELIVERED, FAILED, PENDING, SENT

DUPLICATE_KEY = 11000
RECEIPT_UPDATABLE = (PENDING, SENT)  # DELIVERED and FAILED are final (until a retry)


def _deliveries():
    return Delivery._get_collection()


def _claims():
    return BatchClaim._get_collection()


def insert_records(docs):
    """Insert delivery records; a (campaign, customer) that has one already is skipped, not doubled."""
    if not docs:
        return
    try:
        _deliveries().insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise


def due(now):
    """PENDING records that may be sent at ``now``: any without ``notBefore`` (a time-of-day send)."""
    return {"$or": [{"notBefore": None}, {"notBefore": {"$lte": now}}]}


def claim(token, worker, now, lease_cutoff, limit=None):
    """Claim batch ``token`` for ``worker`` (one write) and read its PENDING records that are due, in
    send order (``limit``: how many it can have, so they come in one reply); None when another worker
    holds a live claim on it."""
    try:  # free, expired or already ours → ours; a live claim of someone else → duplicate _id
        _claims().update_one(
            {"_id": token, "$or": [{"claimedAt": {"$lt": lease_cutoff}}, {"claimedBy": worker}]},
            {"$set": {"claimedBy": worker, "claimedAt": now}}, upsert=True,
        )
    except DuplicateKeyError:
        return None
    return list(_deliveries().find(
        {"batch": token, "status": PENDING, **due(now)},
        {"email": 1, "vendorMessageId": 1, "customer": 1, "variant": 1},
    ).sort("_id", 1).batch_size(0 if limit is None else limit))


def release(token, worker):
    """Give the batch up (done, stopped, or handed back)."""
    _claims().delete_one({"_id": token, "claimedBy": worker})


def record_outcomes(token, attempted, sent_at, failed, failed_at):
    """Outcomes of a chunk of sends, touching only records still PENDING; ``(sent, failed)``: how many
    records each changed (so a chunk written twice is counted once). One bulk write for the sent, one
    more when some failed.

    ``attempted``: the chunk's record ids in send (``_id``) order, each handed to the vendor from
    ``sent_at`` on unless it is in ``failed`` (``{reason: [ids]}``). A batch's records are sent in
    ``_id`` order and a batch never gains records after planning, so the sent ones are "the batch's
    PENDING records in the chunk's ``_id`` range, but the failed": no list of every id for the
    database to match one by one.
    """
    if not attempted:
        return 0, 0
    pending = {"batch": token, "status": PENDING}
    not_sent = {i for ids in failed.values() for i in ids}
    operations = []
    sent = {"$set": {"status": SENT, "sentAt": sent_at, "error": None}, "$inc": {"attempts": 1}}
    if not not_sent:  # (a record deferred to later in the range is due later: left PENDING)
        operations.append(UpdateMany({**pending, "_id": {"$gte": attempted[0], "$lte": attempted[-1]},
                                      **due(sent_at)}, sent))
    else:  # the few failed ones are named; then the sent ones are (in lists of at most MONGO_MAX_IN)
        for chunk in in_chunks(i for i in attempted if i not in not_sent):
            operations.append(UpdateMany({**pending, "_id": {"$in": chunk}}, sent))
    failures = [UpdateMany({**pending, "_id": {"$in": chunk}}, {
        "$set": {"status": FAILED, "failedAt": failed_at, "error": reason}, "$inc": {"attempts": 1}})
        for reason, ids in failed.items() for chunk in in_chunks(ids)]
    return _modified(operations), _modified(failures)


def _modified(operations):
    """Run ``operations`` in one bulk write; how many records they changed."""
    return _deliveries().bulk_write(operations, ordered=False).modified_count if operations else 0


def defer(pairs):
    """``[(record id, until)]``: PENDING records put off (quiet hours) until then; how many."""
    operations = [UpdateOne({"_id": record_id, "status": PENDING}, {"$set": {"notBefore": until}})
                  for record_id, until in pairs]
    return _deliveries().bulk_write(operations, ordered=False).modified_count if operations else 0


def handed_off(campaign_pk):
    """True when any record was handed to the vendor (SENT or DELIVERED)."""
    return _deliveries().find_one(
        {"campaign": campaign_pk, "status": {"$in": [SENT, DELIVERED]}}, {"_id": 1}) is not None


def pending_batches(campaign_pk):
    """Batch tokens that still have PENDING records."""
    return _deliveries().distinct("batch", {"campaign": campaign_pk, "status": PENDING})


def requeue_failed(campaign_pk, retry):
    """Make the campaign's FAILED records PENDING again for the retry named ``retry``, each old
    batch's into a new batch (a batch token is never reused); their old outcome times are cleared.
    Records this retry already took are left alone, so running the job twice retries nobody twice."""
    collection = _deliveries()
    which = {"campaign": campaign_pk, "status": FAILED, "retry": {"$ne": retry}}
    for token in collection.distinct("batch", which):
        collection.update_many({**which, "batch": token}, {
            "$set": {"status": PENDING, "error": None, "batch": uuid.uuid4().hex, "retry": retry},
            "$unset": {"failedAt": "", "deliveredAt": "", "sentAt": ""}})


def lost_batches(campaign_pk, lease_cutoff, now=None):
    """Batches with due PENDING records older than the lease and no live claim (their task was lost,
    their worker died, or their recipients' local time has come)."""
    tokens = _deliveries().distinct("batch", {
        "campaign": campaign_pk, "status": PENDING, "createdAt": {"$lt": lease_cutoff}, **due(now or utcnow())})
    if not tokens:
        return []
    held = {token for chunk in in_chunks(tokens)
            for token in _claims().distinct("_id", {"_id": {"$in": chunk}, "claimedAt": {"$gte": lease_cutoff}})}
    return [token for token in tokens if token not in held]


def counts(campaign_pk):
    """``{status: count}`` of the campaign's records (one aggregation)."""
    return {row["_id"]: row["n"] for row in _deliveries().aggregate([
        {"$match": {"campaign": campaign_pk}},
        {"$group": {"_id": "$status", "n": {"$sum": 1}}},
    ])}


def record_count(campaign_pk):
    """How many records the campaign has."""
    return _deliveries().count_documents({"campaign": campaign_pk})


def with_records(campaign_pk, customer_ids):
    """How many of ``customer_ids`` have a record of the campaign already."""
    return sum(_deliveries().count_documents({"campaign": campaign_pk, "customer": {"$in": chunk}})
               for chunk in in_chunks(customer_ids))


def has_pending(campaign_pk):
    """True while any record waits to be sent."""
    return _deliveries().find_one({"campaign": campaign_pk, "status": PENDING}, {"_id": 1}) is not None


def failure_reasons(campaign_pk, limit=10):
    """The most common reasons among FAILED records."""
    return [{"reason": row["_id"], "count": row["n"]} for row in _deliveries().aggregate([
        {"$match": {"campaign": campaign_pk, "status": FAILED}},
        {"$group": {"_id": "$error", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}},
        {"$limit": limit},
    ])]


# --- receipts -------------------------------------------------------------------------------------------
def records_for_receipts(delivery_ids, vendor_ids):
    """The records receipts name: by delivery id, then (only for vendor message ids not found that
    way) by vendor message id; one query per ``MONGO_MAX_IN`` ids, each answered by an index."""
    projection = {"status": 1, "vendorMessageId": 1, "sentAt": 1, "campaign": 1, "email": 1, "complainedAt": 1,
                  "attempts": 1}
    found = {}
    for chunk in in_chunks(delivery_ids):
        found.update((doc["_id"], doc) for doc in _deliveries().find({"_id": {"$in": chunk}}, projection))
    known = {doc.get("vendorMessageId") for doc in found.values()}
    for chunk in in_chunks(v for v in vendor_ids if v and v not in known):
        found.update((doc["_id"], doc) for doc in _deliveries().find({"vendorMessageId": {"$in": chunk}}, projection))
    return list(found.values())


def mark_complaints(complaints):
    """``{record id: time}``: the recipient complained (once: a repeated receipt changes nothing); how
    many records changed."""
    return _modified([UpdateMany({"_id": record_id, "complainedAt": None}, {"$set": {"complainedAt": at}})
                      for record_id, at in complaints.items()])


def mark_unsubscribed(campaign_pk, customer_pk, at):
    """The recipient unsubscribed through this campaign's link (the first time counts)."""
    _deliveries().update_one({"campaign": campaign_pk, "customer": customer_pk, "unsubscribedAt": None},
                             {"$set": {"unsubscribedAt": at}})


def apply_receipt_groups(groups):
    """``{(status, error, at, was_pending, bounce): [ids]}`` in a bulk write per (status, was_pending)
    (one update per group and ``MONGO_MAX_IN`` ids); each update only touches records still in the
    state they were read in, so a receipt applied twice changes nothing the second time. Returns
    ``{(status, was_pending): records changed}``. A receipt can overtake the sender's own record of the
    hand-off (outcomes are written every ``ENGINE_FLUSH_S``): a record still PENDING is then marked
    sent at the receipt's time too, and the sender's later write, which only touches PENDING records,
    leaves it alone."""
    operations = {}
    for (status, error, at, was_pending, bounce), ids in groups.items():
        fields = {"status": status, ("deliveredAt" if status == DELIVERED else "failedAt"): at}
        if status == FAILED:
            fields["error"] = error or "failed"
        if bounce:
            fields["bounce"] = bounce
        for chunk in in_chunks(ids):
            if was_pending:
                update = UpdateMany({"_id": {"$in": chunk}, "status": PENDING},
                                    {"$set": {**fields, "sentAt": at}, "$inc": {"attempts": 1}})
            else:
                update = UpdateMany({"_id": {"$in": chunk}, "status": SENT}, {"$set": fields})
            operations.setdefault((status, was_pending), []).append(update)
    return {key: _modified(updates) for key, updates in operations.items()}


def new_record(campaign_pk, customer, token, now, message_id_domain, variant=None, test_group=False,
               not_before=None):
    """A PENDING delivery record document for one recipient (of A/B ``variant``, an index; in the
    test group or not; not to be sent before ``not_before``)."""
    delivery_id = ObjectId()
    doc = {"_id": delivery_id, "campaign": campaign_pk, "customer": customer["_id"],
           "email": customer.get("email") or "", "status": PENDING,
           "vendorMessageId": f"<{delivery_id}@{message_id_domain}>", "attempts": 0,
           "batch": token, "createdAt": now}
    if variant is not None:
        doc["variant"] = variant
    if test_group:
        doc["testGroup"] = True
    if not_before is not None:
        doc["notBefore"] = not_before
    return doc


def customer_messages(customer_pk, limit):
    """``(count, newest first)`` of a customer's delivery records: ``{_id, campaign, status, at,
    variant}``, ``at`` the hand-off (or the planning, for one not sent yet); at most ``limit``."""
    match = {"customer": customer_pk}
    rows = list(_deliveries().aggregate([
        {"$match": match},
        {"$project": {"campaign": 1, "status": 1, "variant": 1, "flow": 1, "flowStep": 1,
                      "at": {"$ifNull": ["$sentAt", "$createdAt"]}}},
        {"$sort": {"at": -1, "_id": -1}},
        {"$limit": limit},
    ]))
    return _deliveries().count_documents(match), rows


def customer_tracking(customer_pk, kinds, limit):
    """``(count, newest first)`` of a customer's opens and/or clicks (``kinds``), each ``{_id (the
    delivery), campaign, flow and flowStep (a flow's message), i (its place in the log), event}``; at
    most ``limit``."""
    head = [{"$match": {"customer": customer_pk, "events.kind": {"$in": list(kinds)}}},
            {"$project": {"campaign": 1, "flow": 1, "flowStep": 1, "events": 1}},
            {"$unwind": {"path": "$events", "includeArrayIndex": "i"}},
            {"$match": {"events.kind": {"$in": list(kinds)}}}]
    counted = next(_deliveries().aggregate([*head, {"$count": "n"}]), None)
    rows = list(_deliveries().aggregate([*head, {"$sort": {"events.at": -1, "_id": -1, "i": -1}}, {"$limit": limit}]))
    return (counted or {}).get("n", 0), rows
