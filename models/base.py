"""Shared pieces of the MongoEngine documents."""
from datetime import datetime, timezone

from mongoengine import DateTimeField, Document


def _system_time():
    return datetime.now(timezone.utc).replace(tzinfo=None)


CLOCK = {"now": _system_time}  # the one clock: tests travel in time by replacing "now" (tests/conftest.clock)


def utcnow():
    """Current time as a naive UTC datetime truncated to milliseconds (MongoDB's precision)."""
    now = CLOCK["now"]()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class TimestampedDocument(Document):
    """A document with ``createdAt`` and ``updatedAt`` kept by :meth:`save`."""

    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    updated_at = DateTimeField(db_field="updatedAt", default=utcnow)

    meta = {"abstract": True}

    def save(self, *args, **kwargs):
        """Save, stamping ``updatedAt`` (a new document's is its ``createdAt``: two clock reads could
        straddle a millisecond)."""
        if self.pk is not None:
            self.updated_at = utcnow()
        else:
            self.updated_at = self.created_at
        return super().save(*args, **kwargs)
