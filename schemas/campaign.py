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
    NormalizedEmail,
    ObjectIdString,
    PageQuery,
    StrictBoolean,
    StrictNumber,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
    single_line,
)
from schemas.rules import RuleList, RulesIn
from schemas.template import AbTestIn, ContentIn, TrackingIn, VariantIn


def present(*names):
    """JSON Schema: these properties are all present (declared too, so linters can follow a ``not``)."""
    return {"properties": {name: {} for name in names}, "required": list(names)}

MAX_MESSAGE = 5000
LOCAL_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MIN_RATE, MAX_RATE = 0.1, 10_000  # messages per second


class AudienceIn(RulesIn):
    """Body of ``check-audience-size``: rules, how they combine, and the (optional) message."""

    message = fields.String(validate=validate.Length(max=MAX_MESSAGE))


class LegacyCampaignIn(AudienceIn):
    """Body of ``create-audience``: as :class:`AudienceIn`, with a required message."""

    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))


def ab_test_out(ab):
    """A campaign's ``abTest`` as the API shows it (the winner as a letter)."""
    if not ab:
        return None
    out = {key: ab.get(key) for key in ("testPercent", "metric", "decideAfterMinutes", "fallback", "phase",
                                         "decidedBy")}
    for key in ("decideAt", "decidedAt"):
        out[key] = iso_utc(ab.get(key))
    out["winner"] = "ABCDE"[ab["winner"]] if ab.get("winner") is not None else None
    return out


class CampaignIn(ContentIn):
    """Body of ``POST /campaigns``: content for ``rules`` or a saved ``segmentId`` (one of them)."""

    OPENAPI = {"allOf": [
        {"oneOf": [{"required": ["rules"]}, {"required": ["segmentId"]}]},
        {"anyOf": [{"required": [name]} for name in ("text", "message", "html", "templateId")]},
        {"not": present("text", "message")},
        {"oneOf": [present("variants", "abTest"), {"not": {"anyOf": [present("variants"), present("abTest")]}}]},
        {"not": present("sendAtLocalTime", "abTest")},
    ]}

    name = TrimmedString(required=True, validate=[validate.Length(min=1, max=200), single_line],
                         metadata={"description": "One line; also the subject when none is given."})
    message = fields.String(validate=validate.Length(min=1, max=MAX_MESSAGE),
                            metadata={"description": "The text body under its earlier name (give text or message)."})
    from_name = TrimmedString(validate=[validate.Length(min=1, max=100), single_line])
    reply_to = NormalizedEmail()
    template_id = ObjectIdString(metadata={
        "description": "Start from a template: its subject, preheader and bodies fill those not given here "
                       "(copied now; later edits of the template do not change this campaign)."})
    tracking = fields.Nested(TrackingIn)
    attribution_days = StrictNumber(validate=validate.Range(min=0, max=365), metadata={
        "maximum_setting": "ATTRIBUTION_MAX_DAYS",
        "description": "Orders this many days after a touch are attributed to the campaign (default 5; at most "
                       "ATTRIBUTION_MAX_DAYS)."})
    attribute_on = fields.String(validate=validate.OneOf(("click", "delivery")), metadata={
        "description": "The touch: a human click (default) or the delivery itself."})
    variants = fields.List(fields.Nested(VariantIn), validate=validate.Length(min=2, max=5), metadata={
        "uniqueItems": True,
        "description": "2–5 A/B variants (A, B, …), each overriding the campaign's subject and/or bodies; "
                       "needs abTest."})
    ab_test = fields.Nested(AbTestIn)
    rules = RuleList()
    logical_operator = fields.String(load_default="AND",
                                     validate=validate.OneOf(("AND", "OR")))
    segment_id = ObjectIdString()
    scheduled_at = UtcDateTime()
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    messages_per_second = StrictNumber(validate=validate.Range(min=MIN_RATE, max=MAX_RATE))
    send_at_local_time = fields.String(validate=validate.Regexp(
        LOCAL_TIME_PATTERN, error="A time HH:MM (00:00–23:59)."), metadata={"description": (
        "Each recipient's message at this time in their own time zone (their `timezone`, else DEFAULT_TIMEZONE): "
        "the first such moment after sending starts, so everyone has it within a day. Not with abTest.")})

    @validates_schema
    def _local_time_alone(self, data, **kwargs):
        if "send_at_local_time" in data and "ab_test" in data:
            raise ValidationError("An A/B test decides on the whole test group at once: send at a local time "
                                  "without abTest.", "sendAtLocalTime")

    @validates("scheduled_at")
    def _in_future(self, value, data_key):
        if value <= utcnow():
            raise ValidationError("Must be in the future.")

    @validates_schema
    def _one_audience(self, data, **kwargs):
        if ("rules" in data) == ("segment_id" in data):
            raise ValidationError("Give either rules or segmentId.", "rules")

    @validates_schema
    def _variants_and_test(self, data, **kwargs):
        if ("variants" in data) != ("ab_test" in data):
            raise ValidationError("Give variants and abTest together.", "abTest" if "variants" in data else "variants")

    @validates_schema
    def _a_body(self, data, **kwargs):
        if "message" in data and "text" in data:
            raise ValidationError("Give text or message (the same field), not both.", "message")
        if not any(data.get(k) for k in ("message", "text", "html", "template_id")):
            raise ValidationError("Give a body (text, message or html) or a templateId.", "text")


class CampaignQuery(PageQuery):
    """Query string of ``GET /campaigns``: the legacy client reads one page of up to 100."""

    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500),
                              metadata={"description": PER_PAGE_HELP})


class CampaignOut(ApiSchema):
    """A campaign; keeps the legacy fields the React client reads (``audience[].audienceSize``)."""

    id = id_field()
    name = fields.String()
    subject = fields.Function(lambda c: c.subject or c.name, metadata={"type": "string"})
    preheader = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.Function(lambda c: c.message, metadata={"type": "string"})
    message = fields.String(metadata={"description": "The text body (its earlier name)."})
    from_name = fields.String(allow_none=True)
    reply_to = fields.String(allow_none=True)
    template_id = ObjectIdString(allow_none=True)
    links = fields.List(fields.String())
    tracking = fields.Dict(metadata={"type": "object", "properties": {
        "opens": {"type": "boolean"}, "clicks": {"type": "boolean"}}})
    attribution_days = fields.Float()
    attribute_on = fields.String(metadata={"enum": ["click", "delivery"]})
    variants = fields.Function(lambda c: [{"variant": "ABCDE"[i], **{k: v.get(k) for k in (
        "subject", "html", "text", "links")}} for i, v in enumerate(c.variants or ())], metadata={
        "type": "array", "items": {"type": "object"}})
    ab_test = fields.Function(lambda c: ab_test_out(c.ab_test), allow_none=True, metadata={
        "type": "object", "nullable": True,
        "description": "testPercent, metric, decideAfterMinutes, fallback; phase (test, waiting, winner), "
                       "decideAt, winner, decidedBy (rule, fallback, manual), decidedAt."})
    status = fields.String(metadata={"enum": list(STATUSES)})
    channel = fields.String()
    rules = fields.Function(lambda c: c.rules.get("rules", []) if c.rules else [],
                            metadata={"type": "array", "items": {"type": "object"}})
    logical_operator = fields.Function(lambda c: (c.rules or {}).get("op", "AND"), metadata={"type": "string"})
    segment_id = ObjectIdString(allow_none=True)
    scheduled_at = UtcDateTime(allow_none=True)
    messages_per_second = fields.Float(allow_none=True)
    send_at_local_time = fields.String(allow_none=True)
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
    stats = fields.Nested("FiguresOut", metadata={"description": "The figures its report has."})


class FailureReasonOut(ApiSchema):
    """How many deliveries failed for one reason."""

    reason = fields.String(allow_none=True)
    count = fields.Integer()


class CountsOut(ApiSchema):
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


class EngagementOut(ApiSchema):
    """Opens or clicks."""

    unique = fields.Integer(metadata={"description": "Recipients with at least one (bots included)."})
    unique_human = fields.Integer(metadata={"description": "Recipients with at least one not suspected to be a bot."})
    total = fields.Integer(metadata={"description": "Every event, bots included."})


class FiguresOut(CountsOut):
    """A campaign's figures (``engine.reports.figures``): delivery counts, engagement, attributed revenue."""

    handed_off = fields.Integer(metadata={
        "description": "Handed to the vendor: sent, delivered, or failed after the hand-off (bounces)."})
    bounced = fields.Integer()
    hard_bounced = fields.Integer()
    complaints = fields.Integer()
    unsubscribed = fields.Integer(metadata={"description": "Unsubscribed through this campaign's link."})
    opens = fields.Nested(EngagementOut)
    clicks = fields.Nested(EngagementOut)
    revenue = fields.Float(metadata={"description": "The amounts of the orders attributed to the campaign."})
    orders = fields.Integer(metadata={"description": "How many orders are attributed to it."})
    revenue_per_recipient = fields.Float(metadata={"description": "revenue ÷ handedOff."})


class StatsOut(FiguresOut):
    """A campaign's figures and its most common failure reasons."""

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


class TrackingEventOut(ApiSchema):
    """One open or click."""

    kind = fields.String(metadata={"enum": ["open", "click"]})
    at = UtcDateTime()
    link = fields.Integer(allow_none=True, metadata={"description": "The link's index in the campaign's links."})
    agent = fields.String(metadata={"description": "The user agent's class: desktop, mobile, image_proxy, "
                                                   "privacy_proxy, scanner or unknown."})
    ip = fields.String(allow_none=True, metadata={"description": "The network (/24 or /48), never the address."})
    method = fields.String()
    suspected_bot = fields.Boolean(attribute="bot")
    reason = fields.String(allow_none=True, metadata={
        "description": "Why it is a suspected bot: head, scanner, privacy_proxy, too_soon or all_links."})


class DeliveryOut(ApiSchema):
    """One recipient's delivery record."""

    id = id_field()
    campaign_id = ObjectIdString()
    customer_id = ObjectIdString()
    email = fields.String()
    status = fields.String(metadata={"enum": list(DELIVERY_STATUSES)})
    vendor_message_id = fields.String(allow_none=True)
    attempts = fields.Integer()
    error = fields.String(allow_none=True)
    created_at = UtcDateTime()
    sent_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    failed_at = UtcDateTime(allow_none=True)
    variant = fields.Function(lambda d: "ABCDE"[d.variant] if d.variant is not None else None, allow_none=True,
                              metadata={"type": "string", "nullable": True, "description": "The A/B variant sent."})
    bounce = fields.String(allow_none=True, metadata={"enum": ["hard", "soft", None]})
    complained_at = UtcDateTime(allow_none=True)
    unsubscribed_at = UtcDateTime(allow_none=True, metadata={"description": "Unsubscribed through this message."})
    opens = fields.Integer(metadata={"description": "Every open, bots included."})
    human_opens = fields.Integer(metadata={"description": "Opens not suspected to be bots."})
    clicks = fields.Integer()
    human_clicks = fields.Integer()
    first_open_at = UtcDateTime(allow_none=True)
    last_open_at = UtcDateTime(allow_none=True)
    first_click_at = UtcDateTime(allow_none=True)
    last_click_at = UtcDateTime(allow_none=True)
    events = fields.List(fields.Nested(TrackingEventOut), metadata={
        "description": "The latest opens and clicks (TRACKING_EVENT_LOG of them)."})


DeliveryPage = page_of(DeliveryOut, "DeliveryPage")


class ReceiptIn(InputSchema):
    """One receipt from the vendor."""

    delivery_id = ObjectIdString()
    vendor_message_id = fields.String(validate=validate.Length(min=1, max=300))
    status = fields.String(required=True, validate=validate.OneOf((DELIVERED, FAILED)))
    timestamp = UtcDateTime(required=True)
    error = fields.String(validate=validate.Length(max=200))
    bounce = fields.String(validate=validate.OneOf(("hard", "soft")), metadata={
        "description": "With FAILED: the message bounced. A hard bounce suppresses the address at once; "
                       "SOFT_BOUNCE_LIMIT soft ones within 30 days do."})
    complaint = StrictBoolean(metadata={
        "description": "With DELIVERED: the recipient reported the message as spam (suppresses the address)."})

    @validates_schema
    def _identified(self, data, **kwargs):
        if "delivery_id" not in data and "vendor_message_id" not in data:
            raise ValidationError("Give deliveryId or vendorMessageId.", "deliveryId")

    @validates_schema
    def _consistent(self, data, **kwargs):
        if "bounce" in data and data.get("status") != FAILED:
            raise ValidationError("A bounce is a FAILED receipt.", "bounce")
        if data.get("complaint") and data.get("status") != DELIVERED:
            raise ValidationError("A complaint is about a DELIVERED message.", "complaint")


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
