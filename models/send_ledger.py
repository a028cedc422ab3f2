"""Each customer's latest marketing hand-offs, for the frequency cap (:mod:`engine.cap`)."""
from mongoengine import DateTimeField, Document, EmbeddedDocument, EmbeddedDocumentListField, ObjectIdField


class Slot(EmbeddedDocument):
    at = DateTimeField(required=True)
    d = ObjectIdField(required=True)  # the delivery record that took it


class SendLedger(Document):
    """``_id`` the customer; ``recent``: their last N slots (N the cap's count), oldest first."""

    id = ObjectIdField(primary_key=True)
    recent = EmbeddedDocumentListField(Slot)

    meta = {"collection": "send_ledger"}
