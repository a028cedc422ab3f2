"""Saved segment schemas."""
from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import ApiSchema, ObjectIdString, PageQuery, TrimmedString, UtcDateTime, id_field, page_of, require_some
from schemas.rules import RuleList, RulesIn


class SegmentIn(RulesIn):
    """Body of ``POST /segments``."""

    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))


class SegmentPatch(SegmentIn):
    """Body of ``PATCH /segments/<id>``: a new name and/or new rules."""

    SOME_OF = ("name", "rules")  # at least one (the OpenAPI document says so too)

    name = TrimmedString(validate=validate.Length(min=1, max=100))
    rules = RuleList()

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, self.SOME_OF)


class SegmentOut(ApiSchema):
    """A saved segment."""

    id = id_field()
    name = fields.String()
    rules = fields.Function(lambda s: s.rules.get("rules", []), metadata={"type": "array", "items": {"type": "object"}})
    logical_operator = fields.Function(lambda s: s.rules.get("op", "AND"), metadata={"type": "string", "enum": ["AND", "OR"]})
    created_by = ObjectIdString(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class SegmentDetailOut(SegmentOut):
    """A saved segment with its audience counted now."""

    audience_size = fields.Integer()


SegmentPage = page_of(SegmentOut, "SegmentPage")


class PreviewIn(RulesIn):
    """Body of ``POST /segments/preview``: rules (and how they combine), or a saved ``segmentId``."""

    OPENAPI = {"oneOf": [{"required": ["rules"]}, {"required": ["segmentId"]}]}

    rules = RuleList()
    segment_id = ObjectIdString()

    @validates_schema
    def _one_audience(self, data, **kwargs):
        if ("rules" in data) == ("segment_id" in data):
            raise ValidationError("Give either rules or segmentId.", "rules")


class SampleCustomerOut(ApiSchema):
    """A customer in a preview's sample: who, not what they spent."""

    name = fields.String()
    email = fields.String()


class PreviewOut(ApiSchema):
    """How many customers match, and the first ten."""

    audience_size = fields.Integer(required=True)
    sample = fields.List(fields.Nested(SampleCustomerOut), required=True)


class SegmentQuery(PageQuery):
    """Query string of ``GET /segments``."""
