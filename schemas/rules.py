"""Validation of audience rules for every schema that takes them (campaigns, segments, the AI)."""
from marshmallow import ValidationError, fields, validate

from schemas.common import InputSchema
from segments import as_group, rule_errors


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
    errors = rule_errors(group)
    if errors:
        raise ValidationError(_nested(errors))
    return group


class RuleList(fields.Field):
    """``rules``: a list of rules ``{field, operator, value}`` and groups ``{op, rules}``."""

    default_error_messages = {"invalid": "Must be a list of rules and groups."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise self.make_error("invalid")
        validate_rules(value)
        return value


class RulesIn(InputSchema):
    """The audience part of a body: ``rules`` joined by ``logicalOperator`` (AND by default)."""

    rules = RuleList(required=True, metadata={
        "type": "array",
        "items": {"type": "object", "description": "{field, operator, value} or {op, rules}"},
    })
    logical_operator = fields.String(load_default="AND", validate=validate.OneOf(("AND", "OR")))
