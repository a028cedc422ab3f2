"""Customer request and response schemas."""
from marshmallow import fields, post_load, validate, validates_schema

from schemas.attribute import LOCALE_PATTERN, ZONE_PATTERN, AttributeValues, LocaleTag, TimeZoneName
from schemas.campaign import DeliveryOut
from schemas.event import EventOut
from schemas.common import (
    ApiSchema,
    InputSchema,
    NormalizedEmail,
    ObjectIdString,
    StrictBoolean,
    PageQuery,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
    require_some,
)
from schemas.order import OrderOut

SORT_FIELDS = ("createdAt", "updatedAt", "name", "email", "totalSpend", "numVisits", "lastVisitDate")
SORT_CHOICES = SORT_FIELDS + tuple(f"-{name}" for name in SORT_FIELDS)


def tags_field():
    """Up to 50 tags of 1–50 characters, stored lower-case, duplicates dropped."""
    return fields.List(
        TrimmedString(lower=True, validate=validate.Length(min=1, max=50)),
        validate=validate.Length(max=50),
    )


class CustomerIn(InputSchema):
    """Body of ``POST /customers``."""

    name = TrimmedString(required=True, validate=validate.Length(min=1, max=200))
    email = NormalizedEmail(required=True, validate=validate.Length(max=254))
    tags = tags_field()
    subscribed = StrictBoolean(metadata={
        "description": "Consent to campaigns (default true). false records `unsubscribedAt`."})
    attributes = AttributeValues()
    timezone = TimeZoneName(allow_none=True, metadata={
        "pattern": ZONE_PATTERN, "description": "A time zone of the IANA zone database (Europe/Paris, "
                                                "America/New_York, UTC; any case); null removes it."})
    locale = LocaleTag(allow_none=True, metadata={"pattern": LOCALE_PATTERN, "description": (
        "A BCP 47 language tag (fr, fr-FR, zh-Hant-TW; _ is read as -), stored in its usual case; null removes it.")})

    @post_load
    def _unique_tags(self, data, **kwargs):
        if "tags" in data:
            data["tags"] = list(dict.fromkeys(data["tags"]))
        return data


class CustomerPatch(CustomerIn):
    """Body of ``PATCH /customers/<id>``: at least one of the fields."""

    # at least one (the OpenAPI document says so too)
    SOME_OF = ("name", "email", "tags", "subscribed", "attributes", "timezone", "locale")

    name = TrimmedString(validate=validate.Length(min=1, max=200))
    email = NormalizedEmail(validate=validate.Length(max=254))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, self.SOME_OF)


class CustomerUpsert(CustomerIn):
    """Body of ``PUT /customers/by-email/<email>``: the email comes from the path."""

    name = TrimmedString(validate=validate.Length(min=1, max=200), metadata={
        "description": "Required to create the customer."})
    email = NormalizedEmail(validate=validate.Length(max=254), metadata={
        "description": "Optional; must equal the address in the path."})


class UpsertQuery(InputSchema):
    """``mode``: ``merge`` (fields given replace, tags are added) or ``replace`` (tags too)."""

    mode = fields.String(load_default="merge", validate=validate.OneOf(("merge", "replace")))


class CustomerQuery(PageQuery):
    """Query string of ``GET /customers``."""

    email = TrimmedString(lower=True, validate=validate.Length(min=1, max=254))
    q = fields.String(validate=validate.Length(min=1, max=200))
    subscribed = fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"})
    sort = fields.String(load_default="-createdAt", validate=validate.OneOf(SORT_CHOICES))


class CustomerExportQuery(InputSchema):
    """Query string of ``GET /customers/export.csv``: the list's filters, or a segment."""

    email = TrimmedString(lower=True, validate=validate.Length(min=1, max=254))
    q = fields.String(validate=validate.Length(min=1, max=200))
    subscribed = fields.Boolean(truthy={"true", "1"}, falsy={"false", "0"})
    segment_id = ObjectIdString()


class BulkItemOut(ApiSchema):
    """One item's outcome in a bulk answer."""

    index = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": ["created", "updated", "unchanged", "skipped", "failed"]})
    id = fields.String(metadata={"description": "The record's id (not for failed items)"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    message = fields.String()
    duplicate_of = fields.Integer()


class BulkOut(ApiSchema):
    """The answer to a bulk request: counts by status and one entry per item, in order."""

    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    items = fields.List(fields.Nested(BulkItemOut), required=True)


class CustomerOut(ApiSchema):
    """A customer as the API returns it."""

    id = id_field()
    name = fields.String()
    email = fields.String()
    total_spend = fields.Float()
    num_visits = fields.Integer()
    tags = fields.List(fields.String())
    subscribed = fields.Function(lambda c: c.subscribed is not False)
    unsubscribed_at = UtcDateTime(allow_none=True)
    attributes = AttributeValues(dump_default={})
    timezone = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    rfm = fields.Function(lambda c: c.rfm or None, allow_none=True, metadata={
        "type": "object", "nullable": True, "description": "Read-only RFM scores 1–5 and segment "
        "`{r, f, m, segment}` (README: RFM); null for a customer without an order or before the first pass."})
    last_visit_date = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


CustomerPage = page_of(CustomerOut, "CustomerPage")


class CustomerDeleteQuery(InputSchema):
    """Query string of ``DELETE /customers/<id>``: ``erase=true`` also anonymises their deliveries."""

    erase = fields.Boolean(load_default=False, truthy={"true", "1"}, falsy={"false", "0"})


class CustomerExportOut(ApiSchema):
    """Everything stored about one customer (a data subject's access request)."""

    customer = fields.Nested(CustomerOut, required=True)
    orders = fields.List(fields.Nested(OrderOut), required=True)
    deliveries = fields.List(fields.Nested(DeliveryOut), required=True)
    events = fields.List(fields.Nested(EventOut), required=True)
    exported_at = UtcDateTime(required=True)
