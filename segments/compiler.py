"""The audience rule language, compiled to a MongoDB filter document (pure functions, no I/O).

A rule is ``{"field", "operator", "value"}``; a group is ``{"op": "AND"|"OR", "rules": [...]}`` and
may nest (depth ≤ 5, ≤ 50 rules and groups in all). The legacy flat body (``rules`` + ``logicalOperator``) is the
one-group case. Values arrive as text (the legacy client sends every value as a string) or JSON and
are coerced by field type, so no client value can become an operator or a pattern.

Semantics:
- numbers compare as numbers; ``between`` is inclusive; ``in``/``notIn`` take a list or "a,b,c".
- a date ``YYYY-MM-DD`` means that whole UTC day (``= 2024-05-01`` is any time that day,
  ``> 2024-05-01`` starts the next day); a full ISO datetime means that instant.
- ``withinLastDays N``: in the last N days; ``notWithinLastDays N``: not in the last N days,
  including customers with no value (never visited).
- strings match case-insensitively and literally (regex-escaped): ``contains``, ``startsWith``,
  ``=``, ``!=``, ``in``, ``notIn``. ``emailDomain`` is the part after ``@``.
- ``tags``: ``contains`` one tag, ``in`` any of, ``notIn`` none of.
- ``exists`` ``true``/``false``: the field has a (non-null) value or not.
- declared custom attributes are fields too, ``attributes.<key>`` (the caller passes them in
  ``fields``): string, number and date ones as above; ``boolean`` ones ``=``/``!=`` true or false;
  ``list`` ones as tags, matched exactly (case included).
- as in MongoDB, negations (``!=``, ``notIn``, ``notWithinLastDays``) also match missing values.
"""
import math
import re
from datetime import datetime, timedelta, timezone

from dates import parse_iso_datetime

NUMBER, DATE, STRING, DOMAIN, TAGS = "number", "date", "string", "domain", "tags"
BOOLEAN, LIST = "boolean", "list"  # declared attributes only
FIELDS = {
    "totalSpend": NUMBER,
    "numVisits": NUMBER,
    "lastVisitDate": DATE,
    "createdAt": DATE,
    "name": STRING,
    "email": STRING,
    "emailDomain": DOMAIN,
    "tags": TAGS,
    "rfm.r": NUMBER,  # RFM scores 1–5 and segment (engine.rfm; absent for customers without an order)
    "rfm.f": NUMBER,
    "rfm.m": NUMBER,
    "rfm.segment": STRING,
}
OPERATORS_BY_TYPE = {
    NUMBER: (">", ">=", "<", "<=", "=", "!=", "between", "in", "notIn", "exists"),
    DATE: (">", ">=", "<", "<=", "=", "!=", "between", "in", "notIn",
           "withinLastDays", "notWithinLastDays", "exists"),
    STRING: ("contains", "startsWith", "=", "!=", "in", "notIn", "exists"),
    DOMAIN: ("=", "!=", "in", "notIn"),
    TAGS: ("contains", "in", "notIn", "exists"),
    BOOLEAN: ("=", "!=", "exists"),
    LIST: ("contains", "in", "notIn", "exists"),
}
OPERATORS = tuple(dict.fromkeys(op for ops in OPERATORS_BY_TYPE.values() for op in ops))
GROUP_OPERATORS = {"AND": "$and", "OR": "$or"}
MAX_DEPTH = 5
MAX_RULES = 50  # rules and groups together: 45,000 empty groups are no cheaper to walk than rules
TOO_MANY = f"At most {MAX_RULES} rules and groups in all."
MAX_LIST = 100
MAX_NUMBER = 1e15
MAX_DAYS = 36500
MAX_TEXT = 200
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DATE_ONLY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ONE_DAY = timedelta(days=1)
_ONE_MS = timedelta(milliseconds=1)


class RuleError(ValueError):
    """A rule or group that cannot be used; ``path`` names it (``rules[1].rules[0].value``)."""

    def __init__(self, message, path=()):
        super().__init__(message)
        self.message = message
        self.path = tuple(path)


# --- value coercion ----------------------------------------------------------------------------
def _number(value):
    if isinstance(value, bool):
        raise RuleError("Must be a number.")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        number = float(value.strip())
    else:
        raise RuleError('Must be a number, e.g. "100" or "99.5".')
    if not math.isfinite(number) or abs(number) > MAX_NUMBER:
        raise RuleError("Must be a finite number of reasonable size.")
    return number


def _date_window(value):
    """The half-open ``(start, end)`` a date value stands for."""
    if not isinstance(value, str):
        raise RuleError('Must be a date, e.g. "2024-05-01".')
    text = value.strip()
    try:
        start = parse_iso_datetime(text)
        return start, start + (_ONE_DAY if _DATE_ONLY_RE.match(text) else _ONE_MS)
    except (ValueError, OverflowError) as exc:
        raise RuleError("Must be a date (YYYY-MM-DD) or an ISO-8601 datetime.") from exc


def _text(value):
    if not isinstance(value, str) or not value.strip():
        raise RuleError("Must be non-empty text.")
    if len(value) > MAX_TEXT:
        raise RuleError(f"Must be at most {MAX_TEXT} characters.")
    return value.strip()


def _days(value):
    number = _number(value)
    if number != int(number) or not 1 <= number <= MAX_DAYS:
        raise RuleError(f"Must be a whole number of days from 1 to {MAX_DAYS}.")
    return int(number)


def _flag(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise RuleError("Must be true or false.")


def _items(value, coerce):
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value:
        raise RuleError('Must be a non-empty list, e.g. ["a", "b"] or "a,b".')
    if len(value) > MAX_LIST:
        raise RuleError(f"At most {MAX_LIST} values.")
    return [coerce(item) for item in value]


def _single(kind):
    return {NUMBER: _number, DATE: _date_window, STRING: _text, DOMAIN: _text, TAGS: _text, BOOLEAN: _flag,
            LIST: _text}[kind]


def coerce_value(field, value, operator="=", fields=None):
    """Coerce a rule value for ``field`` and ``operator``; raise :class:`RuleError` if unusable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RuleError("A value is required.")
    kind = (fields or FIELDS)[field]
    if operator == "exists":
        return _flag(value)
    if operator in ("withinLastDays", "notWithinLastDays"):
        return _days(value)
    if operator in ("in", "notIn"):
        return _items(value, _single(kind))
    if operator == "between":
        items = _items(value, _single(kind))
        if len(items) != 2:
            raise RuleError('Must be two values: [low, high] or "low,high".')
        low, high = items
        first, second = (low[0], high[0]) if kind == DATE else (low, high)
        if first > second:
            raise RuleError("The first value must not be greater than the second.")
        return low, high
    if isinstance(value, (list, dict)):
        raise RuleError("Must be a single value.")
    return _single(kind)(value)


# --- compilation -------------------------------------------------------------------------------
def _ci(pattern):
    return {"$regex": pattern, "$options": "i"}


def _below(operator, value, bson_type):
    """``$lt``/``$lte`` bracketed to one BSON type, as MongoDB's own comparison is.

    MongoDB never matches null or a missing field with ``$lt``; spelling the type out keeps that
    meaning on stores that compare across types (the wire-protocol stand-in), at no cost on MongoDB.
    """
    return {operator: value, "$type": bson_type}


def _number_clause(field, op, value):
    if op == "between":
        return {field: {"$gte": value[0], "$lte": value[1]}}
    if op in ("<", "<="):
        return {field: _below("$lt" if op == "<" else "$lte", value, "number")}
    simple = {">": "$gt", ">=": "$gte", "!=": "$ne", "in": "$in", "notIn": "$nin"}
    return {field: value if op == "=" else {simple[op]: value}}


def _date_clause(field, op, value, now):
    if op == "withinLastDays":
        return {field: {"$gte": now - timedelta(days=value)}}
    if op == "notWithinLastDays":
        return {"$or": [{field: {"$lt": now - timedelta(days=value)}}, {field: None}]}
    if op == "between":
        return {field: {"$gte": value[0][0], "$lt": value[1][1]}}
    if op in ("in", "notIn"):
        windows = [{field: {"$gte": start, "$lt": end}} for start, end in value]
        return {"$or": windows} if op == "in" else {"$nor": windows}
    start, end = value
    return {
        ">": {field: {"$gte": end}},
        ">=": {field: {"$gte": start}},
        "<": {field: _below("$lt", start, "date")},
        "<=": {field: _below("$lt", end, "date")},
        "=": {field: {"$gte": start, "$lt": end}},
        "!=": {"$nor": [{field: {"$gte": start, "$lt": end}}]},
    }[op]


def _string_clause(field, op, value):
    if op in ("in", "notIn"):
        matches = [{field: _ci(f"^{re.escape(item)}$")} for item in value]
        return {"$or": matches} if op == "in" else {"$nor": matches}
    pattern = {"contains": re.escape(value), "startsWith": f"^{re.escape(value)}"}.get(op, f"^{re.escape(value)}$")
    clause = {field: _ci(pattern)}
    return {"$nor": [clause]} if op == "!=" else clause


def _domain_clause(op, value):
    domains = value if op in ("in", "notIn") else [value]
    matches = [{"email": _ci(f"@{re.escape(d.lstrip('@'))}$")} for d in domains]
    clause = matches[0] if len(matches) == 1 else {"$or": matches}
    return {"$nor": matches} if op in ("!=", "notIn") else clause


def _tags_clause(op, value):
    if op == "contains":
        return {"tags": value.lower()}
    lowered = [v.lower() for v in value]
    return {"tags": {"$in": lowered}} if op == "in" else {"tags": {"$nin": lowered}}


def _list_clause(field, op, value):
    if op == "contains":
        return {field: value}
    return {field: {"$in" if op == "in" else "$nin": value}}


def _boolean_clause(field, op, value):
    return {field: value} if op == "=" else {field: {"$ne": value}}


def compile_rule(rule, now=None, path=(), fields=None):
    """One rule → one MongoDB filter clause (``fields``: the usable fields and their kinds, by
    default the built-in :data:`FIELDS`; declared attributes add ``attributes.<key>``)."""
    fields = fields or FIELDS
    if not isinstance(rule, dict):
        raise RuleError("Must be a rule {field, operator, value} or a group {op, rules}.", path)
    field, op = rule.get("field"), rule.get("operator")
    if not isinstance(field, str) or field not in fields:
        if isinstance(field, str) and field.startswith("attributes."):
            raise RuleError(f"{field} is not a declared attribute (see /api/attributes).", (*path, "field"))
        raise RuleError(f"Must be one of: {', '.join(fields)}.", (*path, "field"))
    kind = fields[field]
    if not isinstance(op, str) or op not in OPERATORS_BY_TYPE[kind]:
        raise RuleError(f"For {field}, must be one of: {', '.join(OPERATORS_BY_TYPE[kind])}.", (*path, "operator"))
    if "value" not in rule:
        raise RuleError("A value is required.", (*path, "value"))
    try:
        value = coerce_value(field, rule["value"], op, fields)
    except RuleError as exc:
        raise RuleError(exc.message, (*path, "value")) from exc
    target = "email" if kind == DOMAIN else field
    if op == "exists":
        return {target: {"$ne": None}} if value else {target: None}
    if kind == NUMBER:
        return _number_clause(field, op, value)
    if kind == DATE:
        return _date_clause(field, op, value, now or _now())
    if kind == STRING:
        return _string_clause(field, op, value)
    if kind == DOMAIN:
        return _domain_clause(op, value)
    if kind == BOOLEAN:
        return _boolean_clause(field, op, value)
    if kind == LIST:
        return _list_clause(field, op, value)
    return _tags_clause(op, value)


def _now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def is_group(node):
    """True for ``{"op", "rules"}``."""
    return isinstance(node, dict) and "rules" in node


def check_tree(group, path=("rules",)):
    """Validate shape, depth and size of a group tree (values are checked by compiling)."""
    count = 0

    def walk(node, depth, node_path):
        nonlocal count
        if depth >= MAX_DEPTH:  # the top-level list is the first level
            raise RuleError(f"Rules nest at most {MAX_DEPTH} levels deep.", node_path)
        unknown = set(node) - {"op", "rules"}
        if unknown:
            raise RuleError(f"Unknown key(s): {', '.join(sorted(unknown))}.", node_path)
        if not isinstance(node.get("op", "AND"), str) or node.get("op", "AND") not in GROUP_OPERATORS:
            raise RuleError("Must be AND or OR.", (*node_path, "op"))
        children = node["rules"]
        if not isinstance(children, list):
            raise RuleError("Must be a list of rules and groups.", (*node_path, "rules"))
        for index, child in enumerate(children):
            child_path = (*node_path, "rules", index) if depth else (*path, index)
            count += 1
            if count > MAX_RULES:  # at once: the walk never goes past the limit
                raise RuleError(TOO_MANY, path)
            if is_group(child):
                walk(child, depth + 1, child_path)
            elif isinstance(child, dict):
                extra = sorted(set(child) - {"field", "operator", "value"})
                if extra:
                    raise RuleError("Unknown field.", (*child_path, extra[0]))

    walk(group, 0, path)


def rule_errors(group, path=("rules",), fields=None):
    """Every problem in a group tree (shape, depth, size and each value), not just the first, as
    :class:`RuleError` s in document order."""
    errors = []
    count = 0

    def walk(node, depth, node_path):
        nonlocal count
        if depth >= MAX_DEPTH:
            errors.append(RuleError(f"Rules nest at most {MAX_DEPTH} levels deep.", node_path))
            return
        unknown = set(node) - {"op", "rules"}
        if unknown:
            errors.append(RuleError(f"Unknown key(s): {', '.join(sorted(unknown))}.", node_path))
        if not isinstance(node.get("op", "AND"), str) or node.get("op", "AND") not in GROUP_OPERATORS:
            errors.append(RuleError("Must be AND or OR.", (*node_path, "op")))
        children = node["rules"]
        if not isinstance(children, list):
            errors.append(RuleError("Must be a list of rules and groups.", (*node_path, "rules")))
            return
        for index, child in enumerate(children):
            child_path = (*node_path, "rules", index) if depth else (*path, index)
            count += 1
            if count > MAX_RULES:
                raise _TooMany
            if is_group(child):
                walk(child, depth + 1, child_path)
                continue
            extra = sorted(set(child) - {"field", "operator", "value"}) if isinstance(child, dict) else []
            if extra:
                errors.append(RuleError("Unknown field.", (*child_path, extra[0])))
            try:
                compile_rule(child, None, child_path, fields)
            except RuleError as exc:
                errors.append(exc)

    try:
        walk(group, 0, path)
    except _TooMany:  # stop there: the rest is not worth walking
        errors.insert(0, RuleError(TOO_MANY, path))
    return errors


class _TooMany(Exception):
    pass


MATCH_NOTHING = {"_id": {"$exists": False}}


def compile_group(group, now=None, path=("rules",), depth=0, fields=None):
    """A group tree → a MongoDB filter (``{}`` selects everyone).

    An empty AND group selects everyone and an empty OR group nobody, as "all of none" and "any of
    none" do; the top-level list alone is special: empty, it selects everyone whatever its operator.
    Inside AND a select-everyone clause changes nothing; inside OR it makes the whole group everyone.
    """
    operator = GROUP_OPERATORS[group.get("op", "AND")]
    if depth == 0 and not group["rules"]:
        return {}
    clauses = []
    for index, child in enumerate(group["rules"]):
        child_path = (*path, "rules", index) if depth else (*path, index)
        if is_group(child):
            clauses.append(compile_group(child, now, child_path, depth + 1, fields))
        else:
            clauses.append(compile_rule(child, now, child_path, fields))
    if operator == "$or":
        if any(clause == {} for clause in clauses):
            return {}
        clauses = [clause for clause in clauses if clause != MATCH_NOTHING]
        if not clauses:
            return MATCH_NOTHING
    else:
        clauses = [clause for clause in clauses if clause != {}]
        if not clauses:
            return {}
    if len(clauses) == 1:
        return clauses[0]
    return {operator: clauses}


def as_group(rules, logical_operator="AND"):
    """The tree for a top-level rule list joined by ``logicalOperator``."""
    return {"op": logical_operator, "rules": rules}


def compile_rules(rules, logical_operator="AND", now=None, fields=None):
    """A top-level rule list (which may contain groups) → a MongoDB filter."""
    group = as_group(rules, logical_operator)
    check_tree(group)
    return compile_group(group, now, fields=fields)


def path_text(path):
    """``("rules", 1, "rules", 0, "value")`` → ``rules[1].rules[0].value``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
