"""A worker's claim on one batch of delivery records while it sends them.

One small document per batch in flight (deleted when the worker is done), so claiming a batch is one
write however many recipients it holds. A claim older than ``DISPATCH_CLAIM_LEASE_S`` has expired:
its worker is presumed dead and another may take the batch.
"""
from mongoengine import DateTimeField, Document, StringField


class BatchClaim(Document):
    """``_id`` is the batch token of the delivery records."""

    token = StringField(primary_key=True)
    claimed_by = StringField(db_field="claimedBy", required=True)
    claimed_at = DateTimeField(db_field="claimedAt", required=True)

    # a claim left by a dead worker is useless long after its lease; MongoDB removes it after a week
    meta = {"collection": "dispatch_claims",
            "indexes": [{"fields": ["claimed_at"], "expireAfterSeconds": 7 * 24 * 3600}]}
