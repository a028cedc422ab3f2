"""The legacy campaign record: a message sent to the audience chosen by a rule list."""
from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from models.base import utcnow


class CommunicationLog(Document):
    """A campaign as the legacy client knows it: message, rules, audience size, status."""

    message = StringField(required=True)
    rules = ListField(DictField(), default=list)
    logical_operator = StringField(db_field="logicalOperator", choices=("AND", "OR"), default="AND")
    audience_size = IntField(db_field="audienceSize", default=0)
    status = StringField(default="PENDING")
    sent_at = DateTimeField(db_field="sentAt", default=utcnow)
    created_by = ObjectIdField(db_field="createdBy")
    created_at = DateTimeField(db_field="createdAt", default=utcnow)

    meta = {"collection": "communication_logs", "indexes": ["-sent_at"]}
