"""Campaign, delivery and receipt schemas (including the legacy audience endpoints)."""
from marshmallow import ValidationError, fields, validate, validates, validates_schema

from dates import iso_utc
from models.base import utcnow
from models.campaign import CHANNELS, STATUSES
from models.delivery import DELIVERED, FAILED
from models.delivery import STATUSES as DELIVERY_STATUSES
from schemas.common import (
    PER_PAGE_HELP,
    ApiSchema,
    InputSchema,
    ObjectIdString,
    PageQuery,
    StrictNumber,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
    single_line,
)
from schemas.rules import RuleList, RulesIn

MAX_MESSAGE = 5000
MIN_RATE, MAX_RATE = 0.1, 10_000  # messages per second


class AudienceIn(RulesIn):
    """Body of ``check-audience-size``: rules, how they combine, and the (optional) message."""

    message = fields.String(validate=validate.Length(max=MAX_MESSAGE))


class LegacyCampaignIn(AudienceIn):
    """Body of ``create-audience``: as :class:`AudienceIn`, with a required message."""

    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))


class CampaignIn(InputSchema):
    """Body of ``POST /campaigns``: a message for ``rules`` or a saved ``segmentId`` (one of them)."""

    name = TrimmedString(required=True, validate=[validate.Length(min=1, max=200), single_line],
                         metadata={"description": "Also the email subject: one line."})
    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))
    rules = RuleList(metadata={"type": "array", "items": {"type": "object"}})
    logical_operator = fields.String(load_default="AND",
                                     validate=validate.OneOf(("AND", "OR")))
    segment_id = ObjectIdString()
    scheduled_at = UtcDateTime()
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    messages_per_second = StrictNumber(validate=validate.Range(min=MIN_RATE, max=MAX_RATE))

    @validates("scheduled_at")
    def _in_future(self, value, data_key):
        if value <= utcnow():
            raise ValidationError("Must be in the future.")

    @validates_schema
    def _one_audience(self, data, **kwargs):
        if ("rules" in data) == ("segment_id" in data):
            raise ValidationError("Give either rules or segmentId.", "rules")


class CampaignQuery(PageQuery):
    """Query string of ``GET /campaigns``: the legacy client reads one page of up to 100."""

    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500),
                              metadata={"description": PER_PAGE_HELP})


class CampaignOut(ApiSchema):
    """A campaign; keeps the legacy fields the React client reads (``audience[].audienceSize``)."""

    id = id_field()
    name = fields.String()
    message = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    channel = fields.String()
    rules = fields.Function(lambda c: c.rules.get("rules", []) if c.rules else [],
                            metadata={"type": "array", "items": {"type": "object"}})
    logical_operator = fields.Function(lambda c: (c.rules or {}).get("op", "AND"), metadata={"type": "string"})
    segment_id = ObjectIdString(allow_none=True)
    scheduled_at = UtcDateTime(allow_none=True)
    messages_per_second = fields.Float(allow_none=True)
    audience_size = fields.Function(lambda c: c.audience_size or 0, metadata={"type": "integer"})
    audience = fields.Function(
        lambda c: [{"audienceSize": c.audience_size or 0}],
        metadata={"type": "array",
                  "items": {"type": "object", "properties": {"audienceSize": {"type": "integer"}}}},
    )
    sent_at = fields.Function(lambda c: iso_utc(c.started_at), allow_none=True, metadata={
        "type": "string", "format": "date-time", "nullable": True,
        "description": "When sending started; null until then."})
    started_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class CampaignListItemOut(CampaignOut):
    """A campaign in ``GET /campaigns``: the legacy client renders ``new Date(sentAt)``, so a campaign
    not sent yet shows its scheduled or creation time there instead of null (1970)."""

    sent_at = fields.Function(lambda c: iso_utc(c.started_at or c.scheduled_at or c.created_at),
                              metadata={"type": "string", "format": "date-time"})


class FailureReasonOut(ApiSchema):
    """How many deliveries failed for one reason."""

    reason = fields.String(allow_none=True)
    count = fields.Integer()


class StatsOut(ApiSchema):
    """Delivery counts by status, computed from the delivery records; they add up:
    ``pending + sent + delivered + failed + cancelled = total`` and ``total + suppressed = audienceSize``."""

    audience_size = fields.Integer(allow_none=True, metadata={
        "description": "Every audience member: exactly those planning found once it has finished."})
    pending = fields.Integer(metadata={
        "description": "Still to be sent: waiting records, and members planning has not reached yet."})
    sent = fields.Integer()
    delivered = fields.Integer()
    failed = fields.Integer()
    cancelled = fields.Integer(metadata={
        "description": "Never sent because the campaign was cancelled (what was pending then)."})
    awaiting_receipts = fields.Integer(metadata={
        "description": "Handed to the vendor, no receipt yet: not known to have arrived."})
    total = fields.Integer(metadata={"description": "Recipients: audience members not suppressed."})
    suppressed = fields.Integer(metadata={
        "description": "Audience members not sent to: unsubscribed, or on the suppression list."})
    failure_reasons = fields.List(fields.Nested(FailureReasonOut))


class CampaignDetailOut(CampaignOut):
    """A campaign with its delivery statistics."""

    stats = fields.Nested(StatsOut)


class AudienceSizeOut(ApiSchema):
    """``check-audience-size``: how many customers the rules select."""

    audience_size = fields.Integer(required=True)


class DeliveryQuery(PageQuery):
    """Query string of ``GET /campaigns/<id>/deliveries``."""

    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))


class DeliveryOut(ApiSchema):
    """One recipient's delivery record."""

    id = id_field()
    campaign_id = ObjectIdString()
    customer_id = ObjectIdString()
    email = fields.String()
    message = fields.String()
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    vendor_message_id = fields.String(allow_none=True)
    attempts = fields.Integer()
    error = fields.String(allow_none=True)
    created_at = UtcDateTime()
    sent_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    failed_at = UtcDateTime(allow_none=True)


DeliveryPage = page_of(DeliveryOut, "DeliveryPage")


class ReceiptIn(InputSchema):
    """One receipt from the vendor."""

    delivery_id = ObjectIdString()
    vendor_message_id = fields.String(validate=validate.Length(min=1, max=300))
    status = fields.String(required=True, validate=validate.OneOf((DELIVERED, FAILED)))
    timestamp = UtcDateTime(required=True)
    error = fields.String(validate=validate.Length(max=200))

    @validates_schema
    def _identified(self, data, **kwargs):
        if "delivery_id" not in data and "vendor_message_id" not in data:
            raise ValidationError("Give deliveryId or vendorMessageId.", "deliveryId")


class ReceiptResultOut(ApiSchema):
    """What happened to one receipt."""

    index = fields.Integer()
    id = fields.String()
    result = fields.String(metadata={"enum": ["applied", "unchanged", "unknown", "invalid"]})
    errors = fields.Dict()


class ReceiptsOut(ApiSchema):
    """Totals and per-receipt results."""

    applied = fields.Integer()
    unchanged = fields.Integer()
    unknown = fields.Integer()
    invalid = fields.Integer()
    results = fields.List(fields.Nested(ReceiptResultOut))
