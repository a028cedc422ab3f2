"""Customer request and response schemas."""
from marshmallow import Schema, fields, post_load, validate, validates_schema

from schemas.campaign import DeliveryOut
from schemas.common import (
    InputSchema,
    NormalizedEmail,
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

    @post_load
    def _unique_tags(self, data, **kwargs):
        if "tags" in data:
            data["tags"] = list(dict.fromkeys(data["tags"]))
        return data


class CustomerPatch(CustomerIn):
    """Body of ``PATCH /customers/<id>``: at least one of the fields."""

    name = TrimmedString(validate=validate.Length(min=1, max=200))
    email = NormalizedEmail(validate=validate.Length(max=254))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, ("name", "email", "tags"))


class CustomerQuery(PageQuery):
    """Query string of ``GET /customers``."""

    email = TrimmedString(lower=True, validate=validate.Length(min=1, max=254))
    q = fields.String(validate=validate.Length(min=1, max=200))
    sort = fields.String(load_default="-createdAt", validate=validate.OneOf(SORT_CHOICES))


class CustomerOut(Schema):
    """A customer as the API returns it."""

    id = id_field()
    name = fields.String()
    email = fields.String()
    total_spend = fields.Float(data_key="totalSpend")
    num_visits = fields.Integer(data_key="numVisits")
    tags = fields.List(fields.String())
    last_visit_date = UtcDateTime(data_key="lastVisitDate", allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")
    updated_at = UtcDateTime(data_key="updatedAt")


CustomerPage = page_of(CustomerOut, "CustomerPage")


class CustomerDeleteQuery(InputSchema):
    """Query string of ``DELETE /customers/<id>``: ``erase=true`` also anonymises their deliveries."""

    erase = fields.Boolean(load_default=False, truthy={"true", "1"}, falsy={"false", "0"})


class CustomerExportOut(Schema):
    """Everything stored about one customer (a data subject's access request)."""

    customer = fields.Nested(CustomerOut, required=True)
    orders = fields.List(fields.Nested(OrderOut), required=True)
    deliveries = fields.List(fields.Nested(DeliveryOut), required=True)
    exported_at = UtcDateTime(data_key="exportedAt", required=True)
