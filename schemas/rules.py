"""Validation of audience rules for every schema that takes them (campaigns, segments, the AI)."""
from marshmallow import ValidationError, fields, validate

from schemas.common import InputSchema
from segments import RuleError, as_group, check_tree, compile_group


def _nested(path, message):
    """``(1, "rules", 0, "value")`` → ``{1: {"rules": {0: {"value": [message]}}}}``."""
    error = [message]
    for part in reversed(path):
        error = {part: error}
    return error


def validate_rules(rules, logical_operator="AND"):
    """Check a top-level rule list fully (shape, depth, size, every value); raise ValidationError."""
    group = as_group(rules, logical_operator)
    try:
        check_tree(group)
        compile_group(group)
    except RuleError as exc:
        raise ValidationError(_nested(exc.path[1:], exc.message)) from exc
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
    logical_operator = fields.String(
        data_key="logicalOperator", load_default="AND", validate=validate.OneOf(("AND", "OR"))
    )
