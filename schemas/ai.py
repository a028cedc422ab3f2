"""AI assistant schemas."""
from marshmallow import Schema, fields, validate

from schemas.common import InputSchema
from schemas.rules import RuleList, RulesIn


class AskIn(InputSchema):
    """Body of ``POST /ai/ask``."""

    prompt = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class AskOut(Schema):
    """Gemini's response shape (what the legacy client reads), plus ``text``."""

    candidates = fields.List(fields.Dict(), required=True, metadata={
        "description": "candidates[0].content.parts[0].text is the answer"})
    text = fields.String(required=True)


class SendTimeQuery(InputSchema):
    """Query string of ``GET /ai/send-time``."""

    rationale = fields.Boolean(load_default=False, metadata={"description": "Ask the model for one line of why"})


class SlotOut(Schema):
    """One weekday/hour slot of the order histogram."""

    day_of_week = fields.Integer(data_key="dayOfWeek", metadata={"description": "1 = Sunday … 7 = Saturday"})
    weekday = fields.String()
    hour = fields.Integer()
    orders = fields.Integer()


class SendTimeOut(Schema):
    """The best time to send, from order timestamps."""

    best = fields.Nested(SlotOut, allow_none=True)
    based_on_orders = fields.Integer(data_key="basedOnOrders")
    timezone = fields.String()
    histogram = fields.List(fields.Nested(SlotOut))
    rationale = fields.String(allow_none=True)
    rationale_error = fields.String(data_key="rationaleError")


class SummaryOut(Schema):
    """A campaign's numbers (computed by the server) and the model's wording of them."""

    campaign_id = fields.String(data_key="campaignId")
    stats = fields.Dict(metadata={"description": "audienceSize, sent, delivered, failed, pending, "
                                                 "deliveredPercent, failedPercent, failureReasons"})
    summary = fields.String()


class SegmentRulesIn(InputSchema):
    """Body of ``POST /ai/segment-rules``."""

    description = fields.String(required=True, validate=validate.Length(min=1, max=1000), metadata={
        "example": "people who spent over 5000 but haven't visited in three months"})


class GeneratedRules(RulesIn):
    """The model's answer for segment rules, held to the same schema as rules a user writes."""

    rules = RuleList(required=True, validate=validate.Length(min=1, error="At least one rule is needed."))
    explanation = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class SegmentRulesOut(Schema):
    """Rules ready for ``POST /api/segments`` or ``/api/campaigns``; nothing is saved."""

    rules = fields.List(fields.Dict(), required=True)
    logical_operator = fields.String(data_key="logicalOperator", required=True)
    explanation = fields.String(required=True)
    audience_size = fields.Integer(data_key="audienceSize", required=True, metadata={
        "description": "How many customers the rules select now"})


class MessageVariantsIn(InputSchema):
    """Body of ``POST /ai/message-variants``."""

    objective = fields.String(required=True, validate=validate.Length(min=1, max=1000), metadata={
        "example": "win back customers who have not ordered this year"})
    audience = fields.String(validate=validate.Length(min=1, max=500))
    tone = fields.String(validate=validate.Length(min=1, max=100))
    count = fields.Integer(strict=True, load_default=3, validate=validate.Range(min=2, max=3))


class VariantOut(Schema):
    """One usable message (it passed the same template check as a campaign's message)."""

    message = fields.String(required=True)
    angle = fields.String(allow_none=True, metadata={"description": "What this variant tries, in a line"})
    placeholders = fields.List(fields.String(), metadata={"description": "The placeholders it uses"})


class RejectedVariantOut(Schema):
    """A variant the model wrote that cannot be used, and why."""

    message = fields.String(allow_none=True)
    reason = fields.String()


class MessageVariantsOut(Schema):
    """Usable variants, and any the server rejected."""

    variants = fields.List(fields.Nested(VariantOut), required=True)
    rejected = fields.List(fields.Nested(RejectedVariantOut), required=True)
