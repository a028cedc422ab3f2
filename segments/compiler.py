"""Compile audience rules into a MongoDB filter document.

Pure functions, no database access: the caller runs the returned filter with ``count_documents`` or
``find``. Values arrive as strings (the legacy client sends every value as text) and are coerced by
field type, so no client value can ever reach the query as an operator.

Comparison semantics:
- numbers compare as numbers;
- a date given as ``YYYY-MM-DD`` means that whole UTC day: ``= 2024-05-01`` matches any time that
  day, ``> 2024-05-01`` starts the next day, ``<= 2024-05-01`` includes the day; a full ISO datetime
  means that instant (to MongoDB's millisecond precision).
- as in MongoDB, ``!=`` also matches customers that have no value for the field (never visited).
"""
import math
import re
from datetime import timedelta

from schemas.common import parse_iso_datetime

FIELDS = {"totalSpend": "number", "numVisits": "number", "lastVisitDate": "date"}
OPERATORS = (">", ">=", "<", "<=", "=", "!=")
LOGICAL_OPERATORS = {"AND": "$and", "OR": "$or"}
MAX_NUMBER = 1e15
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE_ONLY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ONE_DAY = timedelta(days=1)
_ONE_MS = timedelta(milliseconds=1)


class RuleError(ValueError):
    """A rule's value cannot be used for its field."""


def _coerce_number(value):
    if isinstance(value, bool):
        raise RuleError("Must be a number.")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        number = float(value.strip())
    else:
        raise RuleError("Must be a number, e.g. \"100\" or \"99.5\".")
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise RuleError("Must be a finite number of reasonable size.")
    return number


def _coerce_date(value):
    """Return the half-open window ``(start, end)`` the date value stands for."""
    if not isinstance(value, str):
        raise RuleError("Must be a date, e.g. \"2024-05-01\".")
    text = value.strip()
    try:
        start = parse_iso_datetime(text)
    except (ValueError, OverflowError) as exc:
        raise RuleError("Must be a date (YYYY-MM-DD) or an ISO-8601 datetime.") from exc
    try:
        return start, start + (_ONE_DAY if _DATE_ONLY_RE.match(text) else _ONE_MS)
    except OverflowError as exc:
        raise RuleError("Date is out of range.") from exc


def coerce_value(field, value):
    """Coerce a rule value for ``field``; raise :class:`RuleError` with a readable message."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RuleError("A value is required.")
    kind = FIELDS[field]
    return _coerce_number(value) if kind == "number" else _coerce_date(value)


def _number_clause(operator, number):
    if operator == "=":
        return number
    return {
        ">": {"$gt": number},
        ">=": {"$gte": number},
        "<": {"$lt": number},
        "<=": {"$lte": number},
        "!=": {"$ne": number},
    }[operator]


def _date_clause(operator, window):
    start, end = window
    inside = {"$gte": start, "$lt": end}
    return {
        ">": {"$gte": end},
        ">=": {"$gte": start},
        "<": {"$lt": start},
        "<=": {"$lt": end},
        "=": inside,
        "!=": {"$not": inside},
    }[operator]


def compile_rule(rule):
    """One ``{"field", "operator", "value"}`` rule → one MongoDB filter clause."""
    field, operator = rule["field"], rule["operator"]
    if field not in FIELDS:
        raise RuleError(f"Unknown field {field!r}.")
    if operator not in OPERATORS:
        raise RuleError(f"Unknown operator {operator!r}.")
    value = coerce_value(field, rule["value"])
    if FIELDS[field] == "number":
        return {field: _number_clause(operator, value)}
    return {field: _date_clause(operator, value)}


def compile_rules(rules, logical_operator="AND"):
    """A flat rule list joined by AND/OR → a MongoDB filter (``{}`` for no rules: everyone)."""
    clauses = [compile_rule(rule) for rule in rules]
    if not clauses:
        return {}
    if len(clauses) == 1:
        return clauses[0]
    return {LOGICAL_OPERATORS[logical_operator]: clauses}
