"""AI assistant schemas."""
from marshmallow import Schema, fields, validate

from schemas.common import InputSchema


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
