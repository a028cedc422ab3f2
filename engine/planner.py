"""Planning: the campaign's audience becomes PENDING delivery records, batch by batch, from a cursor.

The audience is streamed sorted by ``_id``, resuming after ``planCursor``; per batch of
``DISPATCH_BATCH_SIZE`` one ``insert_many`` writes its records. The unique (campaign, customer) index
makes a recipient exactly-once: a record that exists already is skipped, never duplicated. The cursor
moves by compare-and-set, together with the batch's count of suppressed members: two planners on one
campaign (a re-plan while the first is still going) cannot both count a batch, and the one that
loses stops. Only one batch of customers is held in memory at a time. A recipient whose message
cannot be rendered gets a FAILED record with the reason; the others go on. When planning ends,
``audienceSize`` becomes exactly the members it found (records + suppressed).
"""
import logging
import uuid

from flask import current_app

from engine import control, store
from engine.audience import audience_query
from engine.templates import render
from models import Campaign, Customer, Suppression
from models.base import utcnow
from models.db import in_chunks
from models.campaign import SENDING
from services import unsubscribe

log = logging.getLogger(__name__)
PROJECTION = ("name", "email", "totalSpend", "subscribed")


def plan(campaign_id, deliver):
    """Create the records of a sending campaign from its cursor on; ``deliver(campaign_id, token)``
    is handed each batch as soon as it is written."""
    campaign = Campaign.objects(pk=campaign_id).first()
    if campaign is None or campaign.status != SENDING or campaign.planned is not None:
        return
    batch_size = batch_size_for(campaign)
    try:
        query = audience_query(campaign)
    except LookupError as exc:
        control.fail(campaign.pk, str(exc))
        return
    if campaign.audience_size is None:
        Campaign.objects(pk=campaign.pk).update_one(
            set__audience_size=Customer.objects(__raw__=query).count())
    if campaign.plan_cursor is not None:
        query = {"$and": [query, {"_id": {"$gt": campaign.plan_cursor}}]}
    # a fresh projection per query: mongomock changes the one it is given while threads share it
    cursor = Customer._get_collection().find(query, dict.fromkeys(PROJECTION, 1))
    cursor = cursor.sort("_id", 1).batch_size(batch_size)
    batch, position = [], campaign.plan_cursor
    for customer in cursor:
        batch.append(customer)
        if len(batch) == batch_size:
            if not _plan_batch(campaign, batch, deliver, position):
                cursor.close()
                return
            batch, position = [], batch[-1]["_id"]
    if batch:
        if not _plan_batch(campaign, batch, deliver, position):
            return
        position = batch[-1]["_id"]
    reached = Campaign.objects(pk=campaign.pk).only("suppressed").first().suppressed or 0
    Campaign.objects(pk=campaign.pk, status=SENDING, plan_cursor=position).update_one(
        set__planned=utcnow(), set__audience_size=store.record_count(campaign.pk) + reached)
    control.finish_if_done(campaign.pk)


def batch_size_for(campaign):
    """``DISPATCH_BATCH_SIZE``, or fewer for a paced campaign: a batch is sent by one worker under
    one claim, which must not outlive its lease (half of it, at the campaign's pace)."""
    config = current_app.config
    size = config["DISPATCH_BATCH_SIZE"]
    if campaign.messages_per_second:
        size = min(size, int(campaign.messages_per_second * config["DISPATCH_CLAIM_LEASE_S"] / 2))
    return max(1, size)


def _plan_batch(campaign, customers, deliver, position):
    """Write one batch, move the cursor on from ``position``, hand it to delivery; False once the
    campaign stopped (checked before the batch is written, so a paused or cancelled campaign plans
    nothing more) or another planner moved the cursor first."""
    if current_app.extensions["engine"].stopping.is_set() or not Campaign.objects(
            pk=campaign.pk, status=SENDING).count():
        return False
    token = uuid.uuid4().hex
    now = utcnow()
    domain = current_app.config["MESSAGE_ID_DOMAIN"]
    recipients = consenting(customers)
    links = "unsubscribeUrl" in campaign.message  # a signature per recipient only when it is used
    docs = []
    for customer in recipients:
        try:
            link = unsubscribe.url(customer["_id"], campaign.pk) if links else ""
            docs.append(store.new_record(campaign.pk, customer, render(campaign.message, customer, link),
                                         token, now, domain))
        except Exception as exc:  # one customer's data must not stop the campaign
            log.warning("campaign %s: cannot render the message for customer %s: %s",
                        campaign.pk, customer["_id"], exc)
            docs.append(store.new_record(campaign.pk, customer, "", token, now, domain,
                                         error=f"render: {type(exc).__name__}: {exc}"))
    store.insert_records(docs)
    chosen = {c["_id"] for c in recipients}
    left_out = [c["_id"] for c in customers if c["_id"] not in chosen]
    suppressed = len(left_out) - store.with_records(campaign.pk, left_out)  # one sent to before stays theirs
    moved = Campaign.objects(pk=campaign.pk, status=SENDING, plan_cursor=position).update_one(
        set__plan_cursor=customers[-1]["_id"], set__updated_at=now,
        inc__suppressed=suppressed)  # with the cursor, compared and set: counted once
    if moved and docs:
        deliver(str(campaign.pk), token)
    return bool(moved)


def consenting(customers):
    """The customers who may be sent to: subscribed, and not on the suppression list (one query per
    ``MONGO_MAX_IN`` addresses). Addresses compare case-insensitively: the list holds them lower-cased,
    and a customer stored before the API lower-cased addresses (or written around it) is still matched."""
    def address(customer):
        return (customer.get("email") or "").lower()

    suppressed = {doc["email"] for chunk in in_chunks(address(c) for c in customers)
                  for doc in Suppression._get_collection().find({"email": {"$in": chunk}}, {"email": 1})}
    return [c for c in customers if c.get("subscribed") is not False and address(c) not in suppressed]
