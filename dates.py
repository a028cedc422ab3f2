"""Dates as the API reads and writes them: ISO-8601 in, naive UTC stored (MongoDB's millisecond
precision), ``...Z`` out. A leaf module: schemas, the rule compiler and the event publisher use it, and it
imports nothing of the project's.
"""
from datetime import datetime, timezone


def to_utc_naive(value):
    """Normalise a datetime to naive UTC, the form MongoDB stores."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse_iso_datetime(text):
    """Parse an ISO-8601 date or datetime (``Z`` allowed) into naive UTC, or raise ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("Not a valid ISO-8601 date.")
    return to_utc_naive(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


def iso_utc(value):
    """Format a stored (naive UTC) datetime as ``2024-01-31T09:30:00.000Z``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
