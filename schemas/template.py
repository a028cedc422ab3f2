"""Message content (shared by campaigns and templates) and template schemas."""
from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import (
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
    require_some,
    single_line,
)

MAX_SUBJECT, MAX_PREHEADER, MAX_HTML, MAX_TEXT = 300, 300, 500_000, 100_000
PLACEHOLDER_HELP = ('Placeholders: {{name}}, {{firstName}}, {{lastName}}, {{email}}, {{totalSpend}}, {{numVisits}}, '
                    '{{lastVisitDate}}, {{tags}}, {{customerSince}}, {{unsubscribeUrl}}, {{ attributes.<key> }} '
                    '(a declared custom attribute); a fallback for an empty '
                    'value: {{ firstName | default("there") }}.')


class ContentIn(InputSchema):
    """Subject, preheader and bodies: each a personalisation template (:mod:`engine.templates`)."""

    subject = TrimmedString(validate=[validate.Length(min=1, max=MAX_SUBJECT), single_line],
                            metadata={"description": "One line. " + PLACEHOLDER_HELP})
    preheader = TrimmedString(validate=[validate.Length(max=MAX_PREHEADER), single_line], metadata={
        "description": "The preview line mail clients show after the subject (hidden in the HTML body)."})
    html = fields.String(validate=validate.Length(min=1, max=MAX_HTML), metadata={
        "description": "The HTML body. Its http(s) links are tracked (rewritten per recipient) unless "
                       "tracking.clicks is false; their scheme and host cannot be placeholders."})
    text = fields.String(validate=validate.Length(min=1, max=MAX_TEXT), metadata={
        "description": "The text body; derived from the HTML when only HTML is given."})


class TemplateIn(ContentIn):
    """Body of ``POST /templates``."""

    OPENAPI = {"anyOf": [{"required": ["html"]}, {"required": ["text"]}]}

    name = TrimmedString(required=True, validate=[validate.Length(min=1, max=200), single_line])
    subject = TrimmedString(required=True, validate=[validate.Length(min=1, max=MAX_SUBJECT), single_line])

    @validates_schema
    def _a_body(self, data, **kwargs):
        if not data.get("html") and not data.get("text"):
            raise ValidationError("Give html, text or both.", "text")


class TemplatePatch(ContentIn):
    """Body of ``PATCH /templates/<id>``: the fields to change. ``null`` removes the preheader or the
    HTML; ``text: null`` derives the text from the HTML again (changing only the HTML keeps the text)."""

    SOME_OF = ("name", "subject", "preheader", "html", "text")  # at least one (the OpenAPI document says so too)
    OPENAPI = {"not": {"required": ["html", "text"], "properties": {  # not both bodies removed at once
        "html": {"type": "string", "nullable": True, "enum": [None]},
        "text": {"type": "string", "nullable": True, "enum": [None]}}}}

    name = TrimmedString(validate=[validate.Length(min=1, max=200), single_line])
    preheader = TrimmedString(allow_none=True, validate=[validate.Length(max=MAX_PREHEADER), single_line])
    html = fields.String(allow_none=True, validate=validate.Length(min=1, max=MAX_HTML))
    text = fields.String(allow_none=True, validate=validate.Length(min=1, max=MAX_TEXT))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, self.SOME_OF)


class TemplateOut(ApiSchema):
    """A template."""

    id = id_field()
    name = fields.String()
    subject = fields.String()
    preheader = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.String()
    links = fields.List(fields.String(), metadata={"description": "The HTML's tracked links, in order."})
    created_by = ObjectIdString(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


TemplatePage = page_of(TemplateOut, "TemplatePage")


class TemplateQuery(PageQuery):
    """Query string of ``GET /templates``."""


class TrackingIn(InputSchema):
    """What to track (both on unless turned off)."""

    opens = StrictBoolean(metadata={"description": "A 1×1 pixel in the HTML body."})
    clicks = StrictBoolean(metadata={"description": "The HTML body's links go through this server."})


class MessagePreviewIn(InputSchema):
    """Body of ``POST /campaigns/<id>/preview``."""

    customer_id = ObjectIdString(required=True)


class RenderedOut(ApiSchema):
    """A message rendered for one customer (links not rewritten, no pixel; the unsubscribe link is an
    example that does nothing)."""

    subject = fields.String()
    preheader = fields.String(allow_none=True)
    html = fields.String(allow_none=True)
    text = fields.String()


class TestSendIn(InputSchema):
    """Body of ``POST /campaigns/<id>/test-send``."""

    emails = fields.List(NormalizedEmail(), required=True, validate=validate.Length(min=1, max=5))
    customer_id = ObjectIdString(metadata={
        "description": "Whose data fills the placeholders; default: the customer with that address, if any "
                       "(else empty values and their fallbacks)."})


class TestSendResultOut(ApiSchema):
    """One address's outcome."""

    email = fields.String()
    sent = fields.Boolean()
    error = fields.String(allow_none=True)


class TestSendOut(ApiSchema):
    """What the vendor took: test messages are marked (``[Test]`` subject, ``X-CRM-Test``), untracked and
    counted nowhere."""

    results = fields.List(fields.Nested(TestSendResultOut))


class VariantIn(InputSchema):
    """One A/B variant: what differs from the campaign's own content (the rest is the campaign's)."""

    SOME_OF = ("subject", "html", "text")  # at least one (the OpenAPI document says so too)

    subject = TrimmedString(validate=[validate.Length(min=1, max=MAX_SUBJECT), single_line])
    html = fields.String(validate=validate.Length(min=1, max=MAX_HTML))
    text = fields.String(validate=validate.Length(min=1, max=MAX_TEXT), metadata={
        "description": "Derived from the variant's HTML when it gives HTML but no text."})

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, self.SOME_OF)


class AbTestIn(InputSchema):
    """How the variants are tested (see engine.abtest)."""

    test_percent = StrictNumber(required=True, validate=validate.Range(min=1, max=100), metadata={
        "description": "The share of the audience in the test, split evenly at random among the variants; "
                       "the rest gets the winner. 100: everyone is in the test and no winner is sent."})
    metric = fields.String(required=True, validate=validate.OneOf(("opens", "clicks", "revenue")), metadata={
        "description": "Unique human opens or clicks per recipient, or attributed revenue per recipient."})
    decide_after_minutes = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=43_200))
    fallback = fields.String(load_default="manual", validate=validate.OneOf(("leader", "first", "manual")),
                             metadata={"description": "When the rule is not met by the deadline: send the leader, "
                                                      "variant A, or wait for POST /decide (default)."})


class DecideIn(InputSchema):
    """Body of ``POST /campaigns/<id>/decide`` (may be empty)."""

    variant = fields.String(validate=validate.OneOf(tuple("ABCDE")), metadata={
        "description": "The winner, chosen by you; without it the rule decides, and the leader wins when it "
                       "is not met."})
