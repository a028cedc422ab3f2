"""Orders: what customers bought, which drive the customers' totals."""
from mongoengine import DateTimeField, DictField, Document, FloatField, ObjectIdField, StringField

from models.base import utcnow


class Order(Document):
    """One purchase by one customer."""

    customer_id = ObjectIdField(db_field="customer", required=True)
    amount = FloatField(required=True)
    date = DateTimeField(required=True, default=utcnow)
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    created_by = ObjectIdField(db_field="createdBy")
    # the client's own order number: a re-sent order with the same one is recognised, not counted twice
    external_id = StringField(db_field="externalId", max_length=100)
    source = StringField()  # the bulk request or import chunk that wrote it (to credit its totals)
    # the campaign credited with it, decided as it was recorded (engine.attribution): {campaign,
    # delivery, touch, at}
    attribution = DictField()

    meta = {
        "collection": "orders",
        "indexes": [
            ("customer_id", "-date", "-id"), ("-date", "-id"),
            {"fields": ["external_id"], "unique": True, "sparse": True},
            {"fields": ["source"], "sparse": True},
            {"fields": ["attribution.campaign"], "sparse": True},
        ],
    }
