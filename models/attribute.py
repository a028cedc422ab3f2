"""Declared custom attributes: the keys and types customers may carry under ``attributes``."""
from mongoengine import ObjectIdField, StringField

from models.base import TimestampedDocument

STRING, NUMBER, DATE, BOOLEAN, LIST = "string", "number", "date", "boolean", "list"
TYPES = (STRING, NUMBER, DATE, BOOLEAN, LIST)
KEY_PATTERN = r"^[a-z][a-zA-Z0-9_]{0,39}$"  # a safe path segment: no dots, no "$", never an operator
MAX_ATTRIBUTES = 100


class AttributeDefinition(TimestampedDocument):
    """One declared attribute: ``key`` (its name under ``attributes``), ``type``, ``description``.
    The type never changes once declared (stored values would stop fitting it)."""

    key = StringField(required=True, unique=True, regex=KEY_PATTERN)
    type = StringField(required=True, choices=TYPES)
    description = StringField(max_length=500)
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "attribute_definitions", "indexes": [("created_at", "id")]}
