"""Legacy campaign (audience) request and response schemas."""
from marshmallow import Schema, fields, validate

from schemas.common import PageQuery, UtcDateTime, id_field
from schemas.rules import RulesIn

MAX_MESSAGE = 5000


class AudienceIn(RulesIn):
    """Body of ``check-audience-size``: rules, how they combine, and the (optional) message."""

    message = fields.String(validate=validate.Length(max=MAX_MESSAGE))


class CampaignIn(AudienceIn):
    """Body of ``create-audience``: as :class:`AudienceIn`, with a required message."""

    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))


class CampaignOut(Schema):
    """A campaign in the legacy shape the client reads (``audience[].audienceSize``)."""

    id = id_field()
    message = fields.String()
    status = fields.String()
    sent_at = UtcDateTime(data_key="sentAt")
    created_at = UtcDateTime(data_key="createdAt")
    rules = fields.List(fields.Dict(), metadata={"description": "Rules and groups, as given"})
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
