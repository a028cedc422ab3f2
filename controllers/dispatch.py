"""Campaign dispatch: plan recipients from a cursor, deliver batches, finish the campaign.

- ``plan``: streams the audience (sorted by ``_id``, resuming after ``planCursor``) and, per batch of
  ``DISPATCH_BATCH_SIZE``, inserts PENDING delivery records. The unique (campaign, customer) index
  makes a recipient exactly-once: a record that exists already is skipped, never duplicated. Only one
  batch of customers is held in memory at a time. Each batch is handed to ``deliver_batch``.
- ``deliver_batch``: claims the batch (one small claim document with a lease, so two workers never
  send the same batch, and a dead worker's claim expires), sends its PENDING records through the vendor
  (paced by the campaign's ``messagesPerSecond``), then records every outcome in one bulk write of
  set-based updates.
- ``finish_if_done``: a campaign whose plan is complete and that has nothing PENDING is completed
  (or failed, when nothing could be sent).
"""
import logging
import time
import uuid
from datetime import timedelta

from bson import ObjectId
from flask import current_app
from pymongo import UpdateMany
from pymongo.errors import BulkWriteError, DuplicateKeyError

from controllers.messages import render
from models import BatchClaim, Campaign, Customer, Delivery, Segment
from models.base import utcnow
from models.campaign import COMPLETED, FAILED, SENDING
from models.delivery import FAILED as DELIVERY_FAILED
from models.delivery import PENDING, SENT
from services import events
from services.vendors import OutgoingMessage, VendorRejected, VendorUnavailable, vendor_for
from segments import compile_group

log = logging.getLogger(__name__)
PROJECTION = {"name": 1, "email": 1, "totalSpend": 1}
DUPLICATE_KEY = 11000


def audience_query(campaign, now=None):
    """The campaign's audience, evaluated now (segments are dynamic)."""
    rules = campaign.rules
    if campaign.segment_id is not None:
        segment = Segment.objects(pk=campaign.segment_id).first()
        if segment is None:
            raise LookupError("The campaign's segment no longer exists")
        rules = segment.rules
    return compile_group(rules or {"op": "AND", "rules": []}, now or utcnow())


def _message_id(delivery_id):
    return f"<{delivery_id}@{current_app.config['MESSAGE_ID_DOMAIN']}>"


def _insert_batch(campaign, customers, token):
    """Insert PENDING records for ``customers``; existing (campaign, customer) records are skipped."""
    now = utcnow()
    docs = []
    for customer in customers:
        delivery_id = ObjectId()
        docs.append({
            "_id": delivery_id, "campaign": campaign.pk, "customer": customer["_id"],
            "email": customer["email"], "message": render(campaign.message, customer),
            "status": PENDING, "vendorMessageId": _message_id(delivery_id), "attempts": 0,
            "batch": token, "createdAt": now,
        })
    try:
        Delivery._get_collection().insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others:
            raise


def plan(campaign_id, enqueue_delivery):
    """Create the delivery records of a sending campaign, batch by batch, from a cursor."""
    campaign = Campaign.objects(pk=campaign_id).first()
    if campaign is None or campaign.status != SENDING:
        return
    batch_size = current_app.config["DISPATCH_BATCH_SIZE"]
    try:
        query = audience_query(campaign)
    except LookupError as exc:
        fail(campaign_id, str(exc))
        return
    if campaign.audience_size is None:
        Campaign.objects(pk=campaign.pk).update_one(
            set__audience_size=Customer.objects(__raw__=query).count()
        )
    if campaign.plan_cursor is not None:
        query = {"$and": [query, {"_id": {"$gt": campaign.plan_cursor}}]}
    cursor = Customer._get_collection().find(query, PROJECTION).sort("_id", 1).batch_size(batch_size)
    batch = []
    for customer in cursor:
        batch.append(customer)
        if len(batch) == batch_size:
            if not _plan_batch(campaign, batch, enqueue_delivery):
                cursor.close()
                return
            batch = []
    if batch and not _plan_batch(campaign, batch, enqueue_delivery):
        return
    Campaign.objects(pk=campaign.pk).update_one(set__planned=utcnow())
    finish_if_done(campaign_id)


def _plan_batch(campaign, customers, enqueue_delivery):
    """Write one batch, advance the cursor, hand it to delivery; False once the campaign stopped."""
    token = uuid.uuid4().hex
    _insert_batch(campaign, customers, token)
    moved = Campaign.objects(pk=campaign.pk, status=SENDING).update_one(
        set__plan_cursor=customers[-1]["_id"], set__updated_at=utcnow()
    )
    enqueue_delivery(str(campaign.pk), token)
    return bool(moved)


def _lease_cutoff(now):
    """Claims taken before this have expired."""
    return now - timedelta(seconds=current_app.config["DISPATCH_CLAIM_LEASE_S"])


def _claim(token, worker):
    """Claim the batch for ``worker`` (one write) and read its PENDING records; None if another
    worker holds a live claim on it."""
    now = utcnow()
    try:  # free, expired or already ours → ours; a live claim of someone else → duplicate _id
        BatchClaim._get_collection().update_one(
            {"_id": token, "$or": [{"claimedAt": {"$lt": _lease_cutoff(now)}}, {"claimedBy": worker}]},
            {"$set": {"claimedBy": worker, "claimedAt": now}}, upsert=True,
        )
    except DuplicateKeyError:
        return None
    return list(Delivery._get_collection().find(
        {"batch": token, "status": PENDING}, {"email": 1, "message": 1, "vendorMessageId": 1},
    ))


def _release(token, worker):
    BatchClaim._get_collection().delete_one({"_id": token, "claimedBy": worker})


def _reserve_send_window(campaign_id, count):
    """Start time for sending ``count`` messages at the campaign's rate, shared by all workers."""
    campaign = Campaign.objects(pk=campaign_id).only("messages_per_second", "rate_next_at").first()
    rate = campaign.messages_per_second if campaign else None
    if not rate:
        return None, None
    while True:  # compare-and-set on rateNextAt: each batch gets its own slice of time
        now = utcnow()
        previous = campaign.rate_next_at
        start = max(previous or now, now)
        end = start + timedelta(seconds=count / rate)
        if Campaign.objects(pk=campaign_id, rate_next_at=previous).update_one(set__rate_next_at=end):
            return start, rate
        campaign.reload("rate_next_at")


def deliver_batch(campaign_id, token, worker=None):
    """Send one batch. Returns True when another worker holds it (come back after its lease)."""
    campaign = Campaign.objects(pk=campaign_id).only("status", "name").first()
    if campaign is None or campaign.status != SENDING:
        return False
    worker = worker or uuid.uuid4().hex
    records = _claim(token, worker)
    if records is None:
        return True
    try:
        _send(campaign, token, records)
    finally:
        _release(token, worker)
    finish_if_done(campaign_id)
    return False


def _send(campaign, token, records):
    """Send the claimed records (paced) and record every outcome."""
    start, rate = _reserve_send_window(campaign.pk, len(records))
    vendor = vendor_for(current_app.config)
    sent, failed = [], {}
    try:
        with vendor.session() as session:
            for index, record in enumerate(records):
                if rate:
                    delay = (start + timedelta(seconds=index / rate) - utcnow()).total_seconds()
                    if delay > 0:
                        time.sleep(delay)
                message = OutgoingMessage(str(record["_id"]), record["vendorMessageId"], record["email"],
                                          campaign.name, record["message"])
                try:
                    session.send(message)
                    sent.append(record["_id"])
                except VendorRejected as exc:
                    failed.setdefault(str(exc)[:200], []).append(record["_id"])
    except VendorUnavailable as exc:
        log.warning("vendor unavailable for batch %s: %s (sent %d before)", token, exc, len(sent))
        _record(token, sent, failed, everything_attempted=False)
        raise
    _record(token, sent, failed, everything_attempted=True)


def _record(token, sent, failed, everything_attempted):
    """All outcomes of a batch in one bulk write (only records still PENDING in it).

    When every record read was attempted, the sent ones are "all PENDING in the batch but the
    failures", which spares the database a large ``$in`` list. That is exact because records only
    enter a batch when it is planned: ``retry-failed`` moves records it makes PENDING again into new
    batches.
    """
    now = utcnow()
    pending = {"batch": token, "status": PENDING}
    failed_ids = [i for ids in failed.values() for i in ids]
    operations = []
    if sent:
        which = {"$nin": failed_ids} if everything_attempted else {"$in": sent}
        operations.append(UpdateMany({**pending, "_id": which}, {
            "$set": {"status": SENT, "sentAt": now, "error": None}, "$inc": {"attempts": 1}}))
    for reason, ids in failed.items():
        operations.append(UpdateMany({**pending, "_id": {"$in": ids}}, {
            "$set": {"status": DELIVERY_FAILED, "failedAt": now, "error": reason}, "$inc": {"attempts": 1}}))
    if operations:
        Delivery._get_collection().bulk_write(operations, ordered=False)


def stalled_work(now=None):
    """``(campaign ids to plan again, {campaign id: [batch tokens to deliver again]})``.

    A batch is stalled when it has PENDING records older than the lease and no live claim (its task
    was lost, or its worker died). A plan is stalled when a sending campaign has not finished planning
    and has not moved for a lease. Re-queuing is safe: the unique index and the claims keep every
    recipient exactly-once.
    """
    cutoff = _lease_cutoff(now or utcnow())
    sending = list(Campaign.objects(status=SENDING).only("id", "planned", "updated_at"))
    replan = [str(c.pk) for c in sending if c.planned is None and c.updated_at and c.updated_at < cutoff]
    batches = {}
    for campaign in sending:
        tokens = Delivery._get_collection().distinct("batch", {
            "campaign": campaign.pk, "status": PENDING, "createdAt": {"$lt": cutoff}})
        held = set(BatchClaim._get_collection().distinct(
            "_id", {"_id": {"$in": tokens}, "claimedAt": {"$gte": cutoff}})) if tokens else set()
        lost = [token for token in tokens if token not in held]
        if lost:
            batches[str(campaign.pk)] = lost
    return replan, batches


def requeue_failed(campaign_id):
    """Make a campaign's FAILED records PENDING again, each old batch's into a new batch.

    New batches keep batches immutable once planned (see :func:`_record`) and as small as the old.
    """
    collection = Delivery._get_collection()
    pk = ObjectId(str(campaign_id))
    for token in collection.distinct("batch", {"campaign": pk, "status": DELIVERY_FAILED}):
        collection.update_many({"campaign": pk, "batch": token, "status": DELIVERY_FAILED},
                               {"$set": {"status": PENDING, "error": None, "batch": uuid.uuid4().hex}})


def pending_batches(campaign_id):
    """Batch tokens that still have PENDING records (for resume and retry)."""
    return Delivery._get_collection().distinct("batch", {"campaign": ObjectId(str(campaign_id)), "status": PENDING})


def finish_if_done(campaign_id):
    """Complete a fully planned campaign with nothing PENDING left."""
    campaign = Campaign.objects(pk=campaign_id).only("status", "planned").first()
    if campaign is None or campaign.status != SENDING or campaign.planned is None:
        return
    if Delivery.objects(campaign_id=campaign.pk, status=PENDING).count():
        return
    accepted = Delivery.objects(campaign_id=campaign.pk, status__in=[SENT, "DELIVERED"]).count()
    attempted = Delivery.objects(campaign_id=campaign.pk).count()
    final = FAILED if attempted and not accepted else COMPLETED
    if Campaign.objects(pk=campaign.pk, status=SENDING).update_one(
        set__status=final, set__completed_at=utcnow(), set__updated_at=utcnow()
    ):
        events.publish(f"campaign.{final}", campaignId=str(campaign.pk))


def fail(campaign_id, reason):
    """Stop a campaign that cannot go on."""
    if Campaign.objects(pk=campaign_id, status=SENDING).update_one(
        set__status=FAILED, set__last_error=reason, set__updated_at=utcnow()
    ):
        events.publish("campaign.failed", campaignId=str(campaign_id), reason=reason)
