"""The suppression list: addresses no campaign sends to, whatever its rules."""
from mongoengine import DateTimeField, Document, ObjectIdField, StringField

from models.base import utcnow

REASONS = ("manual", "unsubscribed", "bounced", "complained", "import")


class Suppression(Document):
    """One suppressed address (lower-case). Unsubscribing through a message's link adds one, so the
    address stays suppressed even if the customer is deleted and imported again."""

    email = StringField(required=True, unique=True, max_length=254)
    reason = StringField(choices=REASONS, default="manual")
    note = StringField(max_length=500)
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "suppressions", "indexes": [("-created_at", "-id")]}
