"""Soft bounces per address: ``SOFT_BOUNCE_LIMIT`` within 30 days suppress it (engine.receipts)."""
from mongoengine import DateTimeField, Document, IntField, ObjectIdField, StringField


class SoftBounce(Document):
    """One temporary bounce (mailbox full, …) of one address; MongoDB drops it after the window (TTL)."""

    email = StringField(required=True)
    at = DateTimeField(required=True)
    delivery_id = ObjectIdField(db_field="delivery", required=True)
    attempt = IntField(required=True)  # the delivery's send attempt: a retried send may bounce again

    meta = {"collection": "soft_bounces",
            "indexes": [("email", "at"), {"fields": ["at"], "expireAfterSeconds": 31 * 24 * 3600},
                        # one per send attempt, however often (or concurrently) its receipt is posted
                        {"fields": ["delivery_id", "attempt"], "unique": True}]}
