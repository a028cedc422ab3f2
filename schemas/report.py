"""Campaign report schemas: every figure comes from ``engine.reports.figures``."""
from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.campaign import FiguresOut
from schemas.common import ApiSchema, InputSchema, ObjectIdString, PageQuery, UtcDateTime, page_of

FORMATS = ("json", "csv")


class LinkOut(ApiSchema):
    """Clicks on one tracked link (from the recipients' event logs)."""

    variant = fields.String(allow_none=True, metadata={"description": "The A/B variant whose link it is."})
    index = fields.Integer()
    url = fields.String()
    total = fields.Integer()
    unique = fields.Integer()
    unique_human = fields.Integer()


class SeriesPointOut(ApiSchema):
    """Opens and clicks in one hour (the first 48 after sending started) or day (after)."""

    at = fields.String(metadata={"format": "date-time"})
    granularity = fields.String(metadata={"enum": ["hour", "day"]})
    opens = fields.Integer()
    human_opens = fields.Integer()
    clicks = fields.Integer()
    human_clicks = fields.Integer()


class EstimateOut(ApiSchema):
    """A variant's value of the test's metric, with its 95% interval (Wilson for rates, ±1.96 standard
    errors for revenue per recipient; null bounds until there are two recipients)."""

    name = fields.String(metadata={"enum": ["opens", "clicks", "revenue"]})
    value = fields.Float()
    low = fields.Float(allow_none=True)
    high = fields.Float(allow_none=True)


class VariantReportOut(FiguresOut):
    """One A/B variant: its recipients' figures, the metric with its interval, its chance to be best."""

    variant = fields.String()
    subject = fields.String(allow_none=True, metadata={
        "description": "null when the variant keeps the campaign's subject"})
    metric = fields.Nested(EstimateOut)
    probability_best = fields.Float(metadata={"description": "The probability it is the best, now."})


class CampaignReportOut(FiguresOut):
    """``GET /campaigns/<id>/report``."""

    campaign_id = ObjectIdString()
    name = fields.String()
    subject = fields.String()
    status = fields.String()
    started_at = UtcDateTime(allow_none=True)
    completed_at = UtcDateTime(allow_none=True)
    attribution_days = fields.Float()
    attribute_on = fields.String()
    links = fields.List(fields.Nested(LinkOut))
    series = fields.List(fields.Nested(SeriesPointOut))
    variants = fields.List(fields.Nested(VariantReportOut), metadata={"description": "Empty unless an A/B test."})
    ab_test = fields.Function(lambda r: r.get("ab_test"), allow_none=True, metadata={
        "type": "object", "nullable": True, "description": "The test's settings and decision (as on the campaign)."})


class ReportQuery(InputSchema):
    """Query string of ``GET /campaigns/<id>/report``."""

    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))


class PeriodQuery(PageQuery):
    """Query string of ``GET /reports/campaigns``: campaigns that started sending in ``[from, to)``."""

    date_from = UtcDateTime(data_key="from", required=True)
    date_to = UtcDateTime(data_key="to", required=True)
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS))
    per_page = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))

    @validates_schema
    def _ordered(self, data, **kwargs):
        if "date_from" in data and "date_to" in data and data["date_from"] >= data["date_to"]:
            raise ValidationError("Must be after from.", "to")


class PeriodRowOut(FiguresOut):
    """One campaign of the period."""

    campaign_id = ObjectIdString()
    name = fields.String()
    status = fields.String()
    started_at = UtcDateTime(allow_none=True)


PeriodPage = page_of(PeriodRowOut, "CampaignReportPage")


class RfmCutsOut(ApiSchema):
    """The four cuts (20/40/60/80th percentile) of each measure."""

    r = fields.List(UtcDateTime(allow_none=True), metadata={"description": "last order dates"})
    f = fields.List(fields.Float(allow_none=True), metadata={"description": "numbers of orders"})
    m = fields.List(fields.Float(allow_none=True), metadata={"description": "total spends"})


class RfmSummaryOut(ApiSchema):
    """``GET /reports/rfm``."""

    computed_at = UtcDateTime(allow_none=True)
    next_at = UtcDateTime(allow_none=True)
    cuts = fields.Nested(RfmCutsOut, required=True)
    segments = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
