"""Planning: the campaign's audience becomes PENDING delivery records, batch by batch, from a cursor.

The audience is streamed sorted by ``_id``, resuming after ``planCursor``; per batch of
``DISPATCH_BATCH_SIZE`` one ``insert_many`` writes its records. The unique (campaign, customer) index
makes a recipient exactly-once: a record that exists already is skipped, never duplicated. The cursor
moves by compare-and-set, together with the batch's count of suppressed members: two planners on one
campaign (a re-plan while the first is still going) cannot both count a batch, and the one that
loses stops. Only one batch of customers is held in memory at a time. Messages are rendered when
they are sent (:mod:`engine.sender`), not here: a record holds nothing personal but the address. When planning ends,
``audienceSize`` becomes exactly the members it found (records + suppressed).
"""
import uuid

from flask import current_app

import metrics
from engine import abtest, control, localtime, store
from engine.audience import audience_query
from models import Campaign, Customer, Suppression
from models.base import utcnow
from models.db import in_chunks
from models.campaign import AB_TEST, AB_WAITING, AB_WINNER, SENDING

PROJECTION = ("email", "subscribed", "timezone")


def plan(campaign_id, deliver):
    """Create the records of a sending campaign from its cursor on; ``deliver(campaign_id, token)``
    is handed each batch as soon as it is written."""
    campaign = Campaign.objects(pk=campaign_id).first()
    if campaign is None or campaign.status != SENDING or campaign.planned is not None:
        return
    if campaign.ab_test and campaign.ab_test.get("phase") is None:
        control.start_ab_test(campaign.pk)
        campaign.reload()
    phase = (campaign.ab_test or {}).get("phase")
    if phase == AB_WAITING:  # the test group is planned: the decision comes next (engine.control.decide)
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
    if phase == AB_TEST:  # the test group is planned; the rest waits for the winner
        Campaign._get_collection().update_one(
            {"_id": campaign.pk, "status": SENDING, "planCursor": position, "abTest.phase": AB_TEST},
            {"$set": {"abTest.phase": AB_WAITING, "updatedAt": utcnow()}})
        return
    reached = Campaign.objects(pk=campaign.pk).only("suppressed").first().suppressed or 0
    Campaign._get_collection().update_one(
        {"_id": campaign.pk, "status": SENDING, "planCursor": position, "abTest.phase": phase},
        {"$set": {"planned": utcnow(), "audienceSize": store.record_count(campaign.pk) + reached}})
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
    variant = _variants(campaign)
    members = customers
    testing = campaign.ab_test.get("phase") == AB_TEST
    if testing:
        members = [c for c in customers if variant(c) is not None]
    recipients = consenting(members)
    when = _local_times(campaign, now)
    docs = [store.new_record(campaign.pk, customer, token, now, domain, variant(customer), testing, when(customer))
            for customer in recipients]
    waiting = sum(1 for doc in docs if doc.get("notBefore") is not None and doc["notBefore"] > now)
    if waiting:
        metrics.DEFERRED.labels("local_time").inc(waiting)
    store.insert_records(docs)  # a test-group member planned in the test keeps that record: one variant each
    chosen = {c["_id"] for c in recipients}
    counted = members if campaign.ab_test.get("phase") != AB_WINNER else [
        c for c in members if abtest.variant_of(campaign.pk, c["_id"], campaign.ab_test["testPercent"],
                                                len(campaign.variants)) is None]  # the test counted the others
    left_out = [c["_id"] for c in counted if c["_id"] not in chosen]
    suppressed = len(left_out) - store.with_records(campaign.pk, left_out)  # one sent to before stays theirs
    moved = Campaign._get_collection().update_one(  # with the cursor and phase, compared and set: counted once
        {"_id": campaign.pk, "status": SENDING, "planCursor": position,
         "abTest.phase": campaign.ab_test.get("phase")},
        {"$set": {"planCursor": customers[-1]["_id"], "updatedAt": now}, "$inc": {"suppressed": suppressed}},
    ).matched_count
    if moved and docs:
        deliver(str(campaign.pk), token)
    return bool(moved)


def _local_times(campaign, now):
    """``customer → when their message is due`` (None: at once). With ``sendAtLocalTime`` it is the
    first time it is HH:MM in the customer's zone (else ``DEFAULT_TIMEZONE``) at or after sending
    started, as a UTC instant; wall times a clock change skips are moved past the gap."""
    if not campaign.send_at_local_time:
        return lambda customer: None
    hour, minute = localtime.parse(campaign.send_at_local_time)
    start = campaign.started_at or now
    zones, due = {}, {}

    def when(customer):
        zone = localtime.zone_of(customer, zones)
        if zone.key not in due:
            due[zone.key] = localtime.next_wall_time(start, hour, minute, zone)
        return due[zone.key]

    return when


def _variants(campaign):
    """``customer → variant index`` for the phase being planned (None: no variant, or not in the test)."""
    ab = campaign.ab_test or {}
    if not ab:
        return lambda customer: None
    if ab.get("phase") == AB_WINNER:
        return lambda customer: ab["winner"]
    count = len(campaign.variants)
    return lambda customer: abtest.variant_of(campaign.pk, customer["_id"], ab["testPercent"], count)


def consenting(customers):
    """The customers who may be sent to: subscribed, and not on the suppression list (one query per
    ``MONGO_MAX_IN`` addresses). Addresses compare case-insensitively: the list holds them lower-cased,
    and a customer stored before the API lower-cased addresses (or written around it) is still matched."""
    def address(customer):
        return (customer.get("email") or "").lower()

    suppressed = {doc["email"] for chunk in in_chunks(address(c) for c in customers)
                  for doc in Suppression._get_collection().find({"email": {"$in": chunk}}, {"email": 1})}
    return [c for c in customers if c.get("subscribed") is not False and address(c) not in suppressed]
