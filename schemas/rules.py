"""Validation of audience rules for every schema that takes them (campaigns, segments, the AI)."""
import json

from marshmallow import ValidationError, fields, validate

from schemas.attribute import rule_fields
from schemas.common import NOT_BLANK_PATTERN, SPACE_CHARS, InputSchema
from segments import as_group, rule_errors
from segments.compiler import (
    DATE,
    DOMAIN,
    FIELDS,
    GROUP_OPERATORS,
    MAX_DAYS,
    MAX_DEPTH,
    MAX_LIST,
    MAX_NUMBER,
    MAX_RULES,
    MAX_TEXT,
    NUMBER,
    OPERATORS_BY_TYPE,
    STRING,
    TAGS,
)


# --- the rule language as JSON Schema (OpenAPI components), derived from the compiler's tables ------
# A subset of what the server takes, so anything the document calls valid is accepted: numbers as JSON
# numbers or plain decimal text, dates as YYYY-MM-DD or ISO-8601 date-times, lists as JSON arrays (the
# server also takes "a,b"). What JSON Schema cannot say is in the descriptions: at most 5 levels and 50
# rules and groups in all, and a ``between`` pair's first value not above its second.
RULE_REF = {"$ref": "#/components/schemas/AudienceRule"}
GROUP_REF = {"$ref": "#/components/schemas/AudienceGroup"}
RULE_LIST_JSON = {
    "type": "array", "maxItems": MAX_RULES, "items": {"anyOf": [RULE_REF, GROUP_REF]},
    "description": f"Rules and groups (at most {MAX_DEPTH} levels, {MAX_RULES} rules and groups in all).",
}
_NUMBER_TEXT = r"^[+-]?[0-9]{1,15}(\.[0-9]{1,6})?$"
_BLANK = f"[{SPACE_CHARS}]*"
_SOLID = NOT_BLANK_PATTERN
_SINGLE_VALUE = {
    NUMBER: {"anyOf": [{"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER},
                       {"type": "string", "pattern": _NUMBER_TEXT}]},
    DATE: {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]},
    STRING: {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": _SOLID},
}
_SINGLE_VALUE[DOMAIN] = _SINGLE_VALUE[TAGS] = _SINGLE_VALUE[STRING]
# The same lists as text, "a,b,c", as the legacy client sends them.
_CALENDAR_DAY = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"  # every such day exists


def _comma_list(item):
    return {"type": "string", "pattern": rf"^{_BLANK}{item}{_BLANK}(,{_BLANK}{item}{_BLANK}){{0,{MAX_LIST - 1}}}$"}


_LIST_TEXT = {
    NUMBER: _comma_list(_NUMBER_TEXT.strip("^$")),
    DATE: _comma_list(_CALENDAR_DAY),
    STRING: {"type": "string", "allOf": [
        {"pattern": f"[^,{SPACE_CHARS}]"},
        {"pattern": rf"^[^,]{{0,{MAX_TEXT}}}(,[^,]{{0,{MAX_TEXT}}}){{0,{MAX_LIST - 1}}}$"}]},
}
_LIST_TEXT[DOMAIN] = _LIST_TEXT[TAGS] = _LIST_TEXT[STRING]


def _value_schema(kind, operator):
    if operator == "exists":
        return {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}]}
    if operator in ("withinLastDays", "notWithinLastDays"):
        return {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}
    single = _SINGLE_VALUE[kind]
    if operator in ("in", "notIn"):
        return {"anyOf": [{"type": "array", "minItems": 1, "maxItems": MAX_LIST, "items": single},
                          _LIST_TEXT[kind]]}
    if operator == "between":
        return {"type": "array", "minItems": 2, "maxItems": 2, "items": single,
                "description": "[low, high], inclusive; low must not be above high"}
    return single


def rule_components():
    """``AudienceRule`` (one alternative per field type and value shape) and ``AudienceGroup``."""
    alternatives = []
    for kind, operators in OPERATORS_BY_TYPE.items():
        field_names = [name for name, field_kind in FIELDS.items() if field_kind == kind]
        if not field_names:  # a kind only declared attributes have (boolean, list): the description says so
            continue
        shapes = {}
        for operator in operators:
            key = json.dumps(_value_schema(kind, operator), sort_keys=True)
            shapes.setdefault(key, []).append(operator)
        for key, same in shapes.items():
            alternatives.append({
                "type": "object", "additionalProperties": False, "required": ["field", "operator", "value"],
                "properties": {"field": {"type": "string", "enum": field_names},
                               "operator": {"type": "string", "enum": same},
                               "value": json.loads(key)},
            })
    return {
        "AudienceRule": {"description": "{field, operator, value}: see the README's rule language. Declared "
                                        "custom attributes are fields too: `attributes.<key>` (see /api/attributes)",
                         "oneOf": alternatives},
        "AudienceGroup": {"type": "object", "additionalProperties": False, "required": ["rules"],
                          "properties": {"op": {"type": "string", "enum": list(GROUP_OPERATORS), "default": "AND"},
                                         "rules": RULE_LIST_JSON}},
    }


def _nested(errors):
    """RuleErrors → marshmallow's nested messages: ``(1, "rules", 0, "value")`` becomes
    ``{1: {"rules": {0: {"value": [message]}}}}``, all of them merged; errors about the whole list
    (empty path) win, as a plain list."""
    whole = [e.message for e in errors if not e.path[1:]]
    if whole:
        return whole
    merged = {}
    for error in errors:
        node, last = merged, error.path[-1]
        for part in error.path[1:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, list):  # a message on the node itself, and more under it
                child = node[part] = {"_schema": child}
            node = child
        existing = node.get(last)
        if isinstance(existing, dict):
            existing.setdefault("_schema", []).append(error.message)
        else:
            node[last] = (existing or []) + [error.message]
    return merged


def validate_rules(rules, logical_operator="AND"):
    """Check a top-level rule list fully (shape, depth, size, every value); raise ValidationError
    naming every problem by its path."""
    group = as_group(rules, logical_operator)
    errors = rule_errors(group, fields=rule_fields())
    if errors:
        raise ValidationError(_nested(errors))
    return group


class RuleList(fields.Field):
    """``rules``: a list of rules ``{field, operator, value}`` and groups ``{op, rules}``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {}).update(RULE_LIST_JSON)
        super().__init__(**kwargs)

    default_error_messages = {"invalid": "Must be a list of rules and groups."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        validate_rules(value)
        return value


class RulesIn(InputSchema):
    """The audience part of a body: ``rules`` joined by ``logicalOperator`` (AND by default)."""

    rules = RuleList(required=True)
    logical_operator = fields.String(load_default="AND", validate=validate.OneOf(("AND", "OR")))

