"""Per-recipient delivery records (the CommunicationLog): one per (campaign, customer), ever."""
from mongoengine import DateTimeField, Document, IntField, ObjectIdField, StringField

from models.base import utcnow

PENDING, SENT, DELIVERED, FAILED = "PENDING", "SENT", "DELIVERED", "FAILED"
STATUSES = (PENDING, SENT, DELIVERED, FAILED)


class Delivery(Document):
    """One message to one customer. The unique (campaign, customer) index makes it exactly-once."""

    campaign_id = ObjectIdField(db_field="campaign", required=True)
    customer_id = ObjectIdField(db_field="customer", required=True)
    email = StringField(required=True)
    message = StringField(required=True)
    status = StringField(choices=STATUSES, default=PENDING)
    vendor_message_id = StringField(db_field="vendorMessageId")
    attempts = IntField(default=0)
    error = StringField()
    batch_token = StringField(db_field="batch")
    retry = StringField()  # the retry-failed request that last made it PENDING again
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    sent_at = DateTimeField(db_field="sentAt")
    delivered_at = DateTimeField(db_field="deliveredAt")
    failed_at = DateTimeField(db_field="failedAt")

    meta = {
        "collection": "communication_logs",
        "indexes": [
            {"fields": ("campaign_id", "customer_id"), "unique": True},
            ("campaign_id", "status", "customer_id"),
            ("batch_token", "status"),
            "vendor_message_id",
        ],
    }
