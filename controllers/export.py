"""Customers out as CSV, streamed: a cursor read in batches, written a few hundred rows at a time."""
import csv
import io
import unicodedata

from controllers.customers import list_filter
from controllers.segments import get_segment, stored_audience
from dates import iso_utc
from models import Customer
from schemas.attribute import declared_types

COLUMNS = ("id", "name", "email", "tags", "subscribed", "unsubscribedAt", "totalSpend", "numVisits",
           "lastVisitDate", "createdAt", "timezone", "locale")  # then attributes.<key>, one per declared attribute
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")  # and fullwidth = + - @
ROWS_PER_WRITE = 500


def spreadsheet_safe(text):
    """Text a spreadsheet would run as a formula, prefixed with ``'`` so it is shown as text (OWASP):
    judged by its first visible character (invisible format characters such as U+200B or U+FEFF
    in front do not hide a formula)."""
    start = 0
    while start < len(text) and unicodedata.category(text[start]) == "Cf":
        start += 1
    return "'" + text if text.startswith(FORMULA_STARTS, start) else text


def _row(doc):
    date = doc.get("lastVisitDate")
    return [
        str(doc["_id"]), spreadsheet_safe(doc.get("name") or ""), spreadsheet_safe(doc.get("email") or ""),
        spreadsheet_safe("|".join(doc.get("tags") or [])), "false" if doc.get("subscribed") is False else "true",
        iso_utc(doc["unsubscribedAt"]) if doc.get("unsubscribedAt") else "",
        doc.get("totalSpend") or 0, doc.get("numVisits") or 0, iso_utc(date) if date else "",
        iso_utc(doc["createdAt"]) if doc.get("createdAt") else "",
        doc.get("timezone") or "", doc.get("locale") or "",
    ]


def _cell(value):
    """An attribute's value as the import reads it back: lists joined by ``|``, dates ISO-8601."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return spreadsheet_safe("|".join(str(item) for item in value))
    if hasattr(value, "isoformat"):
        return iso_utc(value)
    return spreadsheet_safe(value) if isinstance(value, str) else value


def export_filter(query):
    """The MongoDB filter of an export: the list's filters, and a segment's rules (404 if unknown)."""
    raw = list_filter(query)
    if "segment_id" in query:
        rules = stored_audience(get_segment(str(query["segment_id"])).rules)
        raw = {"$and": [raw, rules]} if raw else rules
    return raw


def customer_rows(query):
    """The CSV text of the matching customers, in ``_id`` order, as a generator of chunks. The
    filter is checked before the first chunk, so a bad one is still an error response."""
    raw = export_filter(query)
    return _chunks(raw, sorted(declared_types()))


def _chunks(raw, keys):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS + tuple(f"attributes.{key}" for key in keys))
    cursor = Customer._get_collection().find(raw, {name: 1 for name in (
        "name", "email", "tags", "subscribed", "unsubscribedAt", "totalSpend", "numVisits", "lastVisitDate",
        "createdAt", "timezone", "locale", "attributes")}).sort("_id", 1).batch_size(ROWS_PER_WRITE)
    count = 0
    for doc in cursor:
        attributes = doc.get("attributes") or {}
        writer.writerow(_row(doc) + [_cell(attributes.get(key)) for key in keys])
        count += 1
        if count % ROWS_PER_WRITE == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
