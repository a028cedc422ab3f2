"""AI assistant schemas."""
from marshmallow import fields, validate

from schemas.campaign import StatsOut
from schemas.common import ApiSchema, InputSchema, ObjectIdString
from schemas.rules import RuleList, RulesIn


class AskIn(InputSchema):
    """Body of ``POST /ai/ask``."""

    prompt = fields.String(required=True, validate=validate.Length(min=1, max=4000))


def _candidates(generation):
    return [{"content": {"parts": [{"text": generation.text}], "role": "model"},
             "finishReason": generation.finish_reason, "index": 0}]


class AskOut(ApiSchema):
    """The model's answer in Gemini's REST shape (what the legacy client reads), plus ``text``."""

    candidates = fields.Function(_candidates, required=True, metadata={
        "type": "array", "items": {"type": "object"},
        "description": "candidates[0].content.parts[0].text is the answer"})
    text = fields.String(required=True)


class SendTimeQuery(InputSchema):
    """Query string of ``GET /ai/send-time``."""

    rationale = fields.Boolean(load_default=False, metadata={"description": "Ask the model for one line of why"})


class SlotOut(ApiSchema):
    """One weekday/hour slot of the order histogram."""

    day_of_week = fields.Integer(metadata={"description": "1 = Sunday … 7 = Saturday"})
    weekday = fields.String()
    hour = fields.Integer()
    orders = fields.Integer()


class SendTimeOut(ApiSchema):
    """The best time to send, from order timestamps."""

    best = fields.Nested(SlotOut, allow_none=True)
    based_on_orders = fields.Integer()
    timezone = fields.String()
    histogram = fields.List(fields.Nested(SlotOut))
    rationale = fields.String(allow_none=True)
    rationale_error = fields.String()


class SummaryStatsOut(StatsOut):
    """The numbers a summary may use, all computed by the server: a campaign's stats and two rates."""

    delivered_percent = fields.Float()
    failed_percent = fields.Float()

    class Meta:
        exclude = ("awaiting_receipts", "total", "suppressed")


class SummaryOut(ApiSchema):
    """A campaign's numbers (computed by the server) and the model's wording of them."""

    campaign_id = ObjectIdString()
    stats = fields.Nested(SummaryStatsOut)
    summary = fields.String()


class SegmentRulesIn(InputSchema):
    """Body of ``POST /ai/segment-rules``."""

    description = fields.String(required=True, validate=validate.Length(min=1, max=1000), metadata={
        "example": "people who spent over 5000 but haven't visited in three months"})


class FlowDescriptionIn(InputSchema):
    """Body of ``POST /ai/flows``."""

    description = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata={
        "example": "welcome new customers, and a week later offer 10% to those who have not ordered"})


class GeneratedRules(RulesIn):
    """The model's answer for segment rules, held to the same schema as rules a user writes."""

    rules = RuleList(required=True, validate=validate.Length(min=1, error="At least one rule is needed."))
    explanation = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class SegmentRulesOut(ApiSchema):
    """Rules ready for ``POST /api/segments`` or ``/api/campaigns``; nothing is saved."""

    rules = fields.List(fields.Dict(), required=True, metadata={
        "description": "{field, operator, value} or {op, rules}, as POST /api/segments takes them"})
    logical_operator = fields.String(required=True, metadata={"enum": ["AND", "OR"]})
    explanation = fields.String(required=True)
    audience_size = fields.Integer(required=True, metadata={
        "description": "How many customers the rules select now"})


class MessageVariantsIn(InputSchema):
    """Body of ``POST /ai/message-variants``."""

    objective = fields.String(required=True, validate=validate.Length(min=1, max=1000), metadata={
        "example": "win back customers who have not ordered this year"})
    audience = fields.String(validate=validate.Length(min=1, max=500))
    tone = fields.String(validate=validate.Length(min=1, max=100))
    count = fields.Integer(strict=True, load_default=3, validate=validate.Range(min=2, max=3))


class VariantOut(ApiSchema):
    """One usable message (it passed the same template check as a campaign's message)."""

    message = fields.String(required=True)
    angle = fields.String(allow_none=True, metadata={"description": "What this variant tries, in a line"})
    placeholders = fields.List(fields.String(), metadata={"description": "The placeholders it uses"})


class RejectedVariantOut(ApiSchema):
    """A variant the model wrote that cannot be used, and why."""

    message = fields.String(allow_none=True)
    reason = fields.String()


class MessageVariantsOut(ApiSchema):
    """Usable variants, and any the server rejected."""

    variants = fields.List(fields.Nested(VariantOut), required=True)
    rejected = fields.List(fields.Nested(RejectedVariantOut), required=True)
