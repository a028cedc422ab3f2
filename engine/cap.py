"""The frequency cap (``FREQUENCY_CAP``): at most N marketing messages per customer in any H hours,
campaigns and flows together; a transactional flow's messages neither count nor are capped.

A message is sent only after it takes one of its customer's N slots: one conditional write to the
customer's ledger document, which keeps their last N hand-offs (oldest first) and takes a new one only
while it holds fewer than N or the oldest is older than the window. MongoDB applies a write to one
document atomically, so however many workers send to the same customer at once (campaigns and flows,
several Celery workers), no more than N in any window get a slot. A slot names its delivery record, so
a send retried after a crash finds its slot again instead of taking a second. Messages handed off
before the cap was set are not in the ledger and do not count.
"""
from datetime import timedelta

from flask import current_app
from pymongo.errors import DuplicateKeyError

from models import SendLedger

REASON = "frequency cap"


def frequency_cap():
    """``FREQUENCY_CAP`` as ``(messages, window)``, or None when off."""
    text = current_app.config.get("FREQUENCY_CAP") or ""
    if not text:
        return None
    count, hours = text.rstrip("h").split("/")
    return int(count), timedelta(hours=int(hours))


def describe(cap):
    """The reason a capped message is given."""
    limit, window = cap
    return f"{REASON}: {limit} messages in {int(window.total_seconds() // 3600)} h"


def reserve(customer_pk, delivery_pk, now, cap):
    """Take a slot of ``cap`` for ``delivery_pk`` (True: it may be sent; its own slot taken earlier
    counts), or False when the customer's slots in the window are all taken."""
    limit, window = cap
    ledger = SendLedger._get_collection()
    if ledger.count_documents({"_id": customer_pk, "recent.d": delivery_pk}, limit=1):
        return True
    free = {"$or": [{f"recent.{limit - 1}": {"$exists": False}}, {"recent.0.at": {"$lt": now - window}}]}
    try:
        ledger.update_one({"_id": customer_pk, **free},
                          {"$push": {"recent": {"$each": [{"at": now, "d": delivery_pk}], "$slice": -limit}}},
                          upsert=True)
    except DuplicateKeyError:  # the customer's document exists and its slots are taken
        return False
    return True


def forget(customer_pk):
    """Drop a customer's ledger (they are being deleted)."""
    SendLedger._get_collection().delete_one({"_id": customer_pk})
