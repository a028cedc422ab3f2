"""Stored first responses of create requests sent with an ``Idempotency-Key``."""
from mongoengine import DateTimeField, Document, DictField, IntField, StringField

from models.base import utcnow

KEEP_SECONDS = 24 * 3600


class IdempotentResponse(Document):
    """``_id`` is a hash of (caller, key); ``fingerprint`` one of (method, path, body). ``status`` is
    None while the first request is still being answered."""

    id = StringField(primary_key=True)
    fingerprint = StringField(required=True)
    status = IntField()
    body = StringField()
    headers = DictField()
    created_at = DateTimeField(db_field="createdAt", default=utcnow)

    meta = {
        "collection": "idempotency_keys",
        "indexes": [{"fields": ["created_at"], "expireAfterSeconds": KEEP_SECONDS}],
    }
