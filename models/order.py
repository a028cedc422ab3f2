"""Orders: what customers bought, which drive the customers' totals."""
from mongoengine import DateTimeField, Document, FloatField, ObjectIdField

from models.base import utcnow


class Order(Document):
    """One purchase by one customer."""

    customer_id = ObjectIdField(db_field="customer", required=True)
    amount = FloatField(required=True)
    date = DateTimeField(required=True, default=utcnow)
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    created_by = ObjectIdField(db_field="createdBy")

    meta = {
        "collection": "orders",
        "indexes": [("customer_id", "-date", "-id"), ("-date", "-id")],
    }
