"""Saved segments: named rule trees, evaluated afresh whenever used."""
from mongoengine import DictField, ObjectIdField, StringField

from models.base import TimestampedDocument


class Segment(TimestampedDocument):
    """A named audience definition (``rules`` is a group tree ``{"op", "rules"}``)."""

    name = StringField(required=True, max_length=100, unique=True)
    rules = DictField(required=True)
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "segments", "indexes": ["-created_at"]}
