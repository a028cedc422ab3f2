"""Named events other systems report about a customer (``POST /api/events``): the track API."""
from mongoengine import DateTimeField, DictField, Document, ObjectIdField, StringField

from models.base import utcnow


class CustomerEvent(Document):
    """Something a customer did elsewhere (``cart.abandoned``, ``trial.started``), when, with properties."""

    customer_id = ObjectIdField(db_field="customer", required=True)
    name = StringField(required=True, max_length=100)
    properties = DictField()
    at = DateTimeField(required=True, default=utcnow)  # when it happened (the sender's clock)
    received_at = DateTimeField(db_field="receivedAt", default=utcnow)
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "customer_events", "indexes": [("customer_id", "-at", "-id"), ("name", "-at")]}
