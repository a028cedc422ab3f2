"""The engine's reads and writes of delivery records and batch claims, in plain MongoDB operations.

Everything here is set-based (one ``update_many``/``bulk_write`` per group of records, counts and
groupings by aggregation), so the database filters and counts, never Python.
"""
import uuid

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from engine import tallies
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
    """Insert delivery records; a (campaign, customer) that has one already is skipped, not doubled.
    The ones inserted are tallied ``pending``."""
    if not docs:
        return
    skipped = set()
    try:
        _deliveries().insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        skipped = {e["index"] for e in errors}
    deltas = {}
    for index, doc in enumerate(docs):
        if index not in skipped:
            counts = deltas.setdefault(tallies.key_of(doc), {"pending": 0})
            counts["pending"] += 1
    tallies.add(deltas)


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
        {"email": 1, "vendorMessageId": 1, "customer": 1, "variant": 1, "testGroup": 1},
    ).sort("_id", 1).batch_size(0 if limit is None else limit))


def release(token, worker):
    """Give the batch up (done, stopped, or handed back)."""
    _claims().delete_one({"_id": token, "claimedBy": worker})


def record_outcomes(token, attempted, sent_at, failed, failed_at, keys=None):
    """Outcomes of a chunk of sends, touching only records still PENDING; ``(sent, failed)``: how many
    records each changed (so a chunk written twice is counted once), tallied per key. One bulk write
    for the sent, one more when some failed (per tally key, when the chunk mixes A/B variants).

    ``attempted``: the chunk's record ids in send (``_id``) order, each handed to the vendor from
    ``sent_at`` on unless it is in ``failed`` (``{reason: [ids]}``). A batch's records are sent in
    ``_id`` order and a batch never gains records after planning, so the sent ones are "the batch's
    PENDING records in the chunk's ``_id`` range, but the failed": no list of every id for the
    database to match one by one. ``keys``: ``{id: tally key}`` (:func:`engine.tallies.key_of`); read
    from the records when not given.
    """
    if not attempted:
        return 0, 0
    keys = keys if keys is not None else _tally_keys(attempted)
    by_key = {}
    for record_id in attempted:
        by_key.setdefault(keys[record_id], []).append(record_id)
    deltas, total_sent, total_failed = {}, 0, 0
    for key, ids in by_key.items():
        where = {"batch": token, "status": PENDING, **(_key_filter(key) if len(by_key) > 1 else {})}
        chosen = set(ids)
        failures = {reason: [i for i in chunk if i in chosen] for reason, chunk in failed.items()}
        sent, refused = _outcomes(where, ids, sent_at, {r: i for r, i in failures.items() if i}, failed_at)
        deltas[key] = {"pending": -(sent + refused), "sent": sent, "handedOff": sent, "failed": refused}
        total_sent, total_failed = total_sent + sent, total_failed + refused
    tallies.add(deltas)
    return total_sent, total_failed


def _outcomes(pending, attempted, sent_at, failed, failed_at):
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


def _key_filter(key):
    """The records of one tally key (of one campaign's batch or ids)."""
    _, variant, test = key
    return {"variant": variant, "testGroup": True if test else {"$ne": True}}


def _tally_keys(ids):
    """``{id: tally key}`` of records, read from them."""
    found = {}
    for chunk in in_chunks(ids):
        for doc in _deliveries().find({"_id": {"$in": chunk}}, {"campaign": 1, "variant": 1, "testGroup": 1,
                                                                   "flow": 1}):
            found[doc["_id"]] = tallies.key_of(doc)
    return {i: found.get(i) for i in ids}


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
    Records this retry already took are left alone, so running the job twice retries nobody twice.
    One update per (old batch, tally key, handed off or not), so the tallies move by what changed."""
    collection = _deliveries()
    which = {"campaign": campaign_pk, "status": FAILED, "retry": {"$ne": retry}}
    groups = collection.aggregate([
        {"$match": which},
        {"$group": {"_id": {"batch": "$batch", "variant": "$variant", "test": {"$eq": ["$testGroup", True]},
                            "handedOff": {"$gt": ["$sentAt", None]}}}},
    ])
    tokens, deltas = {}, {}
    for group in groups:
        found = group["_id"]
        key = (campaign_pk, found.get("variant"), found.get("test", False))  # (mongomock leaves false out)
        new_token = tokens.setdefault(found["batch"], uuid.uuid4().hex)
        changed = collection.update_many(
            {**which, "batch": found["batch"], **_key_filter(key),
             "sentAt": {"$ne": None} if found.get("handedOff") else None}, {
                "$set": {"status": PENDING, "error": None, "batch": new_token, "retry": retry},
                "$unset": {"failedAt": "", "deliveredAt": "", "sentAt": ""}}).modified_count
        counts = deltas.setdefault(key, {"failed": 0, "pending": 0, "handedOff": 0})
        counts["failed"] -= changed
        counts["pending"] += changed
        counts["handedOff"] -= changed if found.get("handedOff") else 0
    tallies.add(deltas)


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


def has_status(campaign_pk, statuses):
    """True when any of the campaign's records is in one of ``statuses`` (one indexed look-up)."""
    return _deliveries().find_one({"campaign": campaign_pk, "status": {"$in": list(statuses)}}, {"_id": 1}) is not None


def count_status(campaign_pk, status):
    """How many of the campaign's records are in ``status`` (counted on the (campaign, status) index)."""
    return _deliveries().count_documents({"campaign": campaign_pk, "status": status})


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
                  "attempts": 1, "variant": 1, "testGroup": 1, "flow": 1, "bounce": 1}
    found = {}
    for chunk in in_chunks(delivery_ids):
        found.update((doc["_id"], doc) for doc in _deliveries().find({"_id": {"$in": chunk}}, projection))
    known = {doc.get("vendorMessageId") for doc in found.values()}
    for chunk in in_chunks(v for v in vendor_ids if v and v not in known):
        found.update((doc["_id"], doc) for doc in _deliveries().find({"vendorMessageId": {"$in": chunk}}, projection))
    return list(found.values())


def mark_complaints(complaints, records=None):
    """``{record id: time}``: the recipient complained (once: a repeated receipt changes nothing); how
    many records changed. ``records``: ``{id: record}`` as :func:`records_for_receipts` read them (their
    tally keys; read when not given)."""
    keys = _keys_of(complaints, records)
    by_key = {}
    for record_id, at in complaints.items():
        by_key.setdefault(keys.get(record_id), []).append(
            UpdateMany({"_id": record_id, "complainedAt": None}, {"$set": {"complainedAt": at}}))
    changed = {key: _modified(operations) for key, operations in by_key.items()}
    tallies.add({key: {"complaints": count} for key, count in changed.items()})
    return sum(changed.values())


def _keys_of(ids, records):
    if records is None:
        return _tally_keys(list(ids))
    return {i: tallies.key_of(records[i]) for i in ids}


def mark_unsubscribed(campaign_pk, customer_pk, at):
    """The recipient unsubscribed through this campaign's link (the first time counts)."""
    record = _deliveries().find_one_and_update(
        {"campaign": campaign_pk, "customer": customer_pk, "unsubscribedAt": None},
        {"$set": {"unsubscribedAt": at}}, projection={"campaign": 1, "variant": 1, "testGroup": 1, "flow": 1})
    if record is not None:
        tallies.add({tallies.key_of(record): {"unsubscribed": 1}})


def apply_receipt_groups(groups, records=None):
    """``{(status, error, at, was_pending, bounce): [ids]}`` in a bulk write per (status, was_pending,
    bounce, the record's bounce before, tally key) (one update per group and ``MONGO_MAX_IN`` ids);
    each update only touches records still in the state they were read in, so a receipt applied twice
    changes nothing the second time, and the tallies move by what each bulk write changed. Returns
    ``{(status, was_pending): records changed}``. ``records``: ``{id: record}`` as
    :func:`records_for_receipts` read them (read when not given). A receipt can overtake the sender's
    own record of the hand-off (outcomes are written every ``ENGINE_FLUSH_S``): a record still PENDING
    is then marked sent at the receipt's time too, and the sender's later write, which only touches
    PENDING records, leaves it alone."""
    if records is None:
        records = {doc["_id"]: doc for doc in records_for_receipts(
            [i for ids in groups.values() for i in ids], [])}
    operations = {}
    for (status, error, at, was_pending, bounce), ids in groups.items():
        fields = {"status": status, ("deliveredAt" if status == DELIVERED else "failedAt"): at}
        if status == FAILED:
            fields["error"] = error or "failed"
        if bounce:
            fields["bounce"] = bounce
        split = {}
        for record_id in ids:
            record = records.get(record_id) or {}
            split.setdefault((tallies.key_of(record) if record else None, record.get("bounce")), []).append(record_id)
        for (key, before), part in split.items():
            for chunk in in_chunks(part):
                if was_pending:
                    update = UpdateMany({"_id": {"$in": chunk}, "status": PENDING},
                                        {"$set": {**fields, "sentAt": at}, "$inc": {"attempts": 1}})
                else:
                    update = UpdateMany({"_id": {"$in": chunk}, "status": SENT}, {"$set": fields})
                operations.setdefault((status, was_pending, bounce, before, key), []).append(update)
    changed, deltas = {}, {}
    for (status, was_pending, bounce, before, key), updates in operations.items():
        count = _modified(updates)
        changed[(status, was_pending)] = changed.get((status, was_pending), 0) + count
        if key is not None and count:
            counts = deltas.setdefault(key, dict.fromkeys(("pending", "sent", "handedOff", "delivered", "failed",
                                                           "bounced", "hardBounced"), 0))
            counts["pending" if was_pending else "sent"] -= count
            counts["handedOff"] += count if was_pending else 0
            counts[status.lower()] += count
            if bounce:
                counts["bounced"] += 0 if before else count
                counts["hardBounced"] += count * ((bounce == "hard") - (before == "hard"))
    tallies.add(deltas)
    return changed


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
