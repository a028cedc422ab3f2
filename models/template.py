"""Reusable message templates: content a campaign can start from (copied at its creation)."""
from mongoengine import ListField, ObjectIdField, StringField

from models.base import TimestampedDocument


class Template(TimestampedDocument):
    """A named subject, preheader and bodies (checked like a campaign's, see engine.content)."""

    name = StringField(required=True, max_length=200, unique=True)
    subject = StringField(required=True)
    preheader = StringField()
    html = StringField()
    text = StringField(required=True)
    links = ListField(StringField())
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "templates", "indexes": [("created_at", "id")]}
