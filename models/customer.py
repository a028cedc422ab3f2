"""Customers: the people marketers sell to."""
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    FloatField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from models.base import TimestampedDocument


class Customer(TimestampedDocument):
    """A customer; ``total_spend``, ``num_visits`` and ``last_visit_date`` follow their orders."""

    name = StringField(required=True, max_length=200)
    email = StringField(required=True, unique=True)
    total_spend = FloatField(db_field="totalSpend", default=0.0)
    num_visits = IntField(db_field="numVisits", default=0)
    last_visit_date = DateTimeField(db_field="lastVisitDate")
    created_by = ObjectIdField(db_field="createdBy")
    tags = ListField(StringField(max_length=50), default=list)
    # consent: an unsubscribed customer (or a suppressed email) is never sent a campaign
    subscribed = BooleanField(default=True)
    unsubscribed_at = DateTimeField(db_field="unsubscribedAt")
    # the last import chunks that credited this customer's totals: a chunk resumed after a crash
    # does not credit twice (see engine.ingest.credit_customers)
    credited_by = ListField(StringField(), db_field="creditedBy")
    # declared custom attributes (models.attribute), checked against their definitions on every write
    attributes = DictField()
    timezone = StringField()  # an IANA zone name, e.g. "Europe/Paris"
    locale = StringField()  # a BCP 47 language tag, e.g. "fr-FR"
    rfm = DictField()  # read-only: {r, f, m, segment} (engine.rfm), absent without an order

    meta = {
        "collection": "customers",
        # one (key, _id) index per sortable column: the list sorts by it with _id breaking ties in
        # the same direction, so one index serves both directions; segment ranges use the prefix
        "indexes": [("created_at", "id"), ("updated_at", "id"), ("name", "id"), ("total_spend", "id"),
                    ("num_visits", "id"), ("last_visit_date", "id"), "tags"],
    }
