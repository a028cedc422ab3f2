"""Campaigns: a message sent to an audience, and its state."""
from mongoengine import (
    DateTimeField,
    DictField,
    FloatField,
    IntField,
    ObjectIdField,
    StringField,
)

from models.base import TimestampedDocument

DRAFT, SCHEDULED, SENDING = "draft", "scheduled", "sending"
COMPLETED, PAUSED, CANCELLED, FAILED = "completed", "paused", "cancelled", "failed"
STATUSES = (DRAFT, SCHEDULED, SENDING, COMPLETED, PAUSED, CANCELLED, FAILED)
CHANNELS = ("email",)


class Campaign(TimestampedDocument):
    """A campaign; its recipients are :class:`models.delivery.Delivery` records."""

    name = StringField(required=True, max_length=200)
    message = StringField(required=True)
    rules = DictField()
    segment_id = ObjectIdField(db_field="segment")
    channel = StringField(choices=CHANNELS, default="email")
    status = StringField(choices=STATUSES, default=DRAFT)
    scheduled_at = DateTimeField(db_field="scheduledAt")
    messages_per_second = FloatField(db_field="messagesPerSecond")
    audience_size = IntField(db_field="audienceSize")
    started_at = DateTimeField(db_field="startedAt")
    completed_at = DateTimeField(db_field="completedAt")
    plan_cursor = ObjectIdField(db_field="planCursor")
    suppressed = IntField(default=0)  # audience members skipped: unsubscribed or on the suppression list
    planned = DateTimeField()
    rate_next_at = DateTimeField(db_field="rateNextAt")
    last_error = StringField(db_field="lastError")
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "campaigns", "indexes": ["-created_at", ("status", "scheduled_at")]}
