"""Delivery receipts (the vendor's word on each message), applied idempotently in one bulk write.

Bounces and complaints suppress the address, with the reason: a hard bounce or a complaint at once,
soft bounces once ``SOFT_BOUNCE_LIMIT`` of them arrived within 30 days (each counted once per send
attempt, however often its receipt is posted, in the ``soft_bounces`` collection, which MongoDB
empties after the window).
"""
from datetime import timedelta

from flask import current_app
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

import metrics
from engine import control, store
from models import SoftBounce, Suppression
from models.base import utcnow
from models.db import in_chunks
from models.delivery import DELIVERED, FAILED, PENDING

SOFT_BOUNCE_WINDOW = timedelta(days=30)
DUPLICATE_KEY = 11000

APPLIED, UNCHANGED, UNKNOWN = "applied", "unchanged", "unknown"
__all__ = ["APPLIED", "DELIVERED", "FAILED", "UNCHANGED", "UNKNOWN", "apply"]


def apply(receipts):
    """Apply validated receipts ``[(index, {"delivery_id"|"vendor_message_id", "status",
    "timestamp", "error"?})]``; returns ``{index: {"result", "id"?}}``.

    Times are kept to the second (as most vendors report them), so a batch of 1,000 is a few updates
    (one per status, reason and second), not 1,000. A receipt's time is never before the record's
    ``sentAt`` (a vendor clock running behind cannot make a message delivered before it was sent). A
    receipt names its record by delivery id, else by vendor message id; one naming neither that
    exists is ``unknown``. A campaign whose every recipient has now failed becomes ``failed``.
    """
    records = store.records_for_receipts(
        [r["delivery_id"] for _, r in receipts if r.get("delivery_id")],
        [r["vendor_message_id"] for _, r in receipts if r.get("vendor_message_id")])
    by_id = {record["_id"]: record for record in records}
    by_vendor_id = {record["vendorMessageId"]: record for record in records if record.get("vendorMessageId")}
    groups, results, campaigns = {}, {}, set()
    complaints, hard, soft = {}, {}, []
    for index, receipt in receipts:
        record = by_id.get(receipt.get("delivery_id")) or by_vendor_id.get(receipt.get("vendor_message_id"))
        if record is None:
            results[index] = {"result": UNKNOWN}
            continue
        results[index] = {"id": str(record["_id"]), "result": UNCHANGED}
        at = receipt_time(receipt["timestamp"], record.get("sentAt"))
        if record["status"] in store.RECEIPT_UPDATABLE:
            bounce = receipt.get("bounce")
            key = (receipt["status"], receipt.get("error"), at, record["status"] == PENDING, bounce)
            groups.setdefault(key, []).append(record["_id"])
            record["status"] = receipt["status"]  # a second receipt for it in this batch is unchanged
            results[index]["result"] = APPLIED
            campaigns.add(record["campaign"])
            if bounce == "hard":
                hard.setdefault(record["email"].lower(), record["campaign"])
            elif bounce == "soft":
                soft.append({"email": record["email"].lower(), "at": at, "delivery": record["_id"],
                             "attempt": record.get("attempts", 0)})
        if receipt.get("complaint") and record.get("complainedAt") is None:
            record["complainedAt"] = at
            complaints[record["_id"]] = at
            results[index]["result"] = APPLIED
            hard.setdefault(record["email"].lower(), record["campaign"])
    read = {r["_id"]: r for r in records}
    changed = store.apply_receipt_groups(groups, read)
    _count(receipts, results, changed, store.mark_complaints(complaints, read))
    _suppress(hard, soft, complaints, read)
    if any(key[0] == FAILED for key in groups):
        control.reconsider(campaigns)
    return results


def _count(receipts, results, changed, complained):
    """The metrics: receipts by status and result (applied: the records they changed), the hand-offs a
    receipt recorded before the sender did, complaints."""
    known, unknown = {}, {}
    for index, receipt in receipts:
        tally = unknown if results[index]["result"] == UNKNOWN else known
        tally[receipt["status"]] = tally.get(receipt["status"], 0) + 1
    applied = {}
    for (status, was_pending), count in changed.items():
        applied[status] = applied.get(status, 0) + count
        if was_pending and count:
            metrics.MESSAGES.labels(metrics.HANDED_OFF).inc(count)
    for status in set(known) | set(unknown):
        for result, count in ((APPLIED, applied.get(status, 0)),
                              (UNCHANGED, max(0, known.get(status, 0) - applied.get(status, 0))),
                              (UNKNOWN, unknown.get(status, 0))):
            if count:
                metrics.RECEIPTS.labels(status, result).inc(count)
    if complained:
        metrics.COMPLAINTS.inc(complained)


def _suppress(hard, soft, complaints, records):
    """Suppress hard-bounced and complaining addresses, and those with too many soft bounces."""
    complained = {records[i]["email"].lower() for i in complaints}
    reasons = {email: ("complained" if email in complained else "bounced",
                       f"{'complaint' if email in complained else 'hard bounce'} (campaign {campaign})")
               for email, campaign in hard.items()}
    if soft:
        try:
            SoftBounce._get_collection().insert_many(soft, ordered=False)
        except BulkWriteError as exc:  # a receipt posted again: its bounce is counted once
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
        limit = current_app.config["SOFT_BOUNCE_LIMIT"]
        since = utcnow() - SOFT_BOUNCE_WINDOW
        for chunk in in_chunks({doc["email"] for doc in soft} - set(reasons)):
            for row in SoftBounce._get_collection().aggregate([
                    {"$match": {"email": {"$in": chunk}, "at": {"$gte": since}}},
                    {"$group": {"_id": "$email", "n": {"$sum": 1}}},
                    {"$match": {"n": {"$gte": limit}}}]):
                reasons[row["_id"]] = ("bounced", f"{row['n']} soft bounces in 30 days")
    if reasons:
        now = utcnow()
        Suppression._get_collection().bulk_write([
            UpdateOne({"email": email}, {"$setOnInsert": {"reason": reason, "note": note, "createdAt": now}},
                      upsert=True) for email, (reason, note) in reasons.items()], ordered=False)


def receipt_time(reported, sent_at):
    """The time a receipt records: the vendor's, to the second, and never before ``sent_at`` (the
    sender's time of the hand-off, shared by the records it wrote together)."""
    at = reported.replace(microsecond=0)
    return max(at, sent_at) if sent_at is not None else at
