"""Saved segment schemas."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import ObjectIdString, PageQuery, TrimmedString, UtcDateTime, id_field, page_of, require_some
from schemas.rules import RuleList, RulesIn


class SegmentIn(RulesIn):
    """Body of ``POST /segments``."""

    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))


class SegmentPatch(SegmentIn):
    """Body of ``PATCH /segments/<id>``: a new name and/or new rules."""

    name = TrimmedString(validate=validate.Length(min=1, max=100))
    rules = RuleList()

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, ("name", "rules"))


class SegmentOut(Schema):
    """A saved segment."""

    id = id_field()
    name = fields.String()
    rules = fields.Function(lambda s: s.rules.get("rules", []), metadata={"type": "array", "items": {"type": "object"}})
    logical_operator = fields.Function(lambda s: s.rules.get("op", "AND"), data_key="logicalOperator",
                                       metadata={"type": "string", "enum": ["AND", "OR"]})
    created_by = ObjectIdString(data_key="createdBy", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")
    updated_at = UtcDateTime(data_key="updatedAt")


class SegmentDetailOut(SegmentOut):
    """A saved segment with its audience counted now."""

    audience_size = fields.Integer(data_key="audienceSize")


SegmentPage = page_of(SegmentOut, "SegmentPage")


class PreviewIn(RulesIn):
    """Body of ``POST /segments/preview``: rules (and how they combine), or a saved ``segmentId``."""

    rules = RuleList(metadata={"type": "array", "items": {"type": "object"}})
    segment_id = ObjectIdString(data_key="segmentId")

    @validates_schema
    def _one_audience(self, data, **kwargs):
        if ("rules" in data) == ("segment_id" in data):
            raise ValidationError("Give either rules or segmentId.", "rules")


class PreviewOut(Schema):
    """How many customers match, and the first ten."""

    audience_size = fields.Integer(data_key="audienceSize", required=True)
    sample = fields.List(fields.Dict(), required=True, metadata={
        "items": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}}})


class SegmentQuery(PageQuery):
    """Query string of ``GET /segments``."""
