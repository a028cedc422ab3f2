"""Legacy campaign (audience) request and response schemas."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.common import InputSchema, PageQuery, UtcDateTime, id_field
from segments import FIELDS, OPERATORS, RuleError, coerce_value

MAX_RULES = 50
MAX_MESSAGE = 5000


class RuleValue(fields.Field):
    """A rule value: text as the legacy client sends it, or a plain JSON number."""

    default_error_messages = {"invalid": "Must be a string or a number."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.make_error("invalid")
        return value


class RuleIn(InputSchema):
    """One audience rule ``{"field", "operator", "value"}``."""

    field = fields.String(required=True, validate=validate.OneOf(tuple(FIELDS)))
    operator = fields.String(required=True, validate=validate.OneOf(OPERATORS))
    value = RuleValue(required=True)

    @validates_schema
    def _value_fits_field(self, data, **kwargs):
        if data.get("field") not in FIELDS or "value" not in data:
            return
        try:
            coerce_value(data["field"], data["value"])
        except RuleError as exc:
            raise ValidationError(str(exc), "value") from exc


class AudienceIn(InputSchema):
    """Body of ``check-audience-size``: rules, how they combine, and the (optional) message."""

    rules = fields.List(
        fields.Nested(RuleIn),
        required=True,
        validate=validate.Length(max=MAX_RULES),
    )
    logical_operator = fields.String(
        data_key="logicalOperator", load_default="AND", validate=validate.OneOf(("AND", "OR"))
    )
    message = fields.String(validate=validate.Length(max=MAX_MESSAGE))


class CampaignIn(AudienceIn):
    """Body of ``create-audience``: as :class:`AudienceIn`, with a required message."""

    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))


class RuleOut(Schema):
    """A stored rule."""

    field = fields.String()
    operator = fields.String()
    value = fields.Raw(metadata={"oneOf": [{"type": "string"}, {"type": "number"}]})


class CampaignOut(Schema):
    """A campaign in the legacy shape the client reads (``audience[].audienceSize``)."""

    id = id_field()
    message = fields.String()
    status = fields.String()
    sent_at = UtcDateTime(data_key="sentAt")
    created_at = UtcDateTime(data_key="createdAt")
    rules = fields.List(fields.Nested(RuleOut))
    logical_operator = fields.String(data_key="logicalOperator")
    audience_size = fields.Integer(data_key="audienceSize")
    audience = fields.Function(
        lambda doc: [{"audienceSize": doc.audience_size}],
        metadata={
            "type": "array",
            "items": {"type": "object", "properties": {"audienceSize": {"type": "integer"}}},
        },
    )


class AudienceSizeOut(Schema):
    """``check-audience-size``: how many customers the rules select."""

    audience_size = fields.Integer(data_key="audienceSize", required=True)


class CampaignQuery(PageQuery):
    """Query string of ``GET /campaigns``: the legacy client reads one page of up to 100."""

    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
