"""The audit log: who did what, when, in which request."""
from mongoengine import DateTimeField, DictField, Document, ObjectIdField, StringField

from models.base import utcnow


class AuditEvent(Document):
    """One recorded action."""

    at = DateTimeField(default=utcnow, required=True)
    action = StringField(required=True)
    actor_id = ObjectIdField(db_field="actor")
    actor_email = StringField(db_field="actorEmail")
    via = StringField(choices=("session", "api_key", "cli", "system", "link"), default="session")  # link: a signed link in mail
    target_type = StringField(db_field="targetType")
    target_id = StringField(db_field="targetId")
    request_id = StringField(db_field="requestId")
    ip = StringField()
    details = DictField()

    meta = {"collection": "audit_events", "indexes": [("-at", "-id"), ("action", "-at", "-id"),
                                                     ("actor_id", "-at", "-id")]}
