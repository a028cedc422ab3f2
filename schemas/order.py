"""Order request and response schemas."""
from datetime import timedelta

from marshmallow import ValidationError, fields, pre_load, validate, validates, validates_schema

from dates import iso_utc
from models.base import utcnow
from schemas.common import (
    ApiSchema,
    InputSchema,
    NormalizedEmail,
    ObjectIdString,
    PageQuery,
    StrictNumber,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
)

MAX_AMOUNT = 1e9
FUTURE_TOLERANCE = timedelta(days=1)


class OrderIn(InputSchema):
    """Body of ``POST /orders``; the deployed client sends ``customer`` for ``customerId``."""

    customer_id = ObjectIdString(required=True)
    amount = StrictNumber(
        required=True,
        validate=validate.Range(min=0, min_inclusive=False, max=MAX_AMOUNT),
    )
    date = UtcDateTime()
    external_id = TrimmedString(validate=validate.Length(min=1, max=100),
                                metadata={"description": "Your own order number (unique): an order "
                                          "sent again with it is recognised, not counted twice."})

    @pre_load
    def _accept_legacy_customer(self, data, **kwargs):
        if not isinstance(data, dict) or "customer" not in data:
            return data
        data = dict(data)
        legacy = data.pop("customer")
        if "customerId" in data and data["customerId"] != legacy:
            raise ValidationError(
                "customer and customerId disagree; send only one.", "customerId"
            )
        data["customerId"] = legacy
        return data

    @validates("date")
    def _not_in_future(self, value, data_key):
        if value > utcnow() + FUTURE_TOLERANCE:
            raise ValidationError("Must not be more than a day in the future.")


class BulkOrderIn(OrderIn):
    """One order of ``POST /orders/bulk`` (and of an orders CSV): the customer is named by
    ``customerId`` or ``customerEmail`` (the id wins when both are given)."""

    customer_id = ObjectIdString()
    customer_email = NormalizedEmail(metadata={"description": "The customer's email, in place of "
                                               "customerId: an address no customer has fails that item."})

    @validates_schema
    def _one_customer(self, data, **kwargs):
        if "customer_id" not in data and "customer_email" not in data:
            raise ValidationError("Give customerId or customerEmail.", "customerId")


class OrderQuery(PageQuery):
    """Query string of ``GET /orders``."""

    customer_id = ObjectIdString()
    date_from = UtcDateTime(data_key="from")
    date_to = UtcDateTime(data_key="to")

    @validates_schema
    def _ordered_range(self, data, **kwargs):
        if "date_from" in data and "date_to" in data and data["date_from"] > data["date_to"]:
            raise ValidationError("Must not be before 'from'.", "to")


def _attribution(order):
    found = order.attribution if hasattr(order, "attribution") else order.get("attribution")
    if not found:
        return None
    return {"campaignId": str(found["campaign"]), "touch": found["touch"], "at": iso_utc(found["at"])}


class OrderOut(ApiSchema):
    """An order as the API returns it."""

    id = id_field()
    customer_id = ObjectIdString()
    amount = fields.Float()
    date = UtcDateTime()
    external_id = fields.String(allow_none=True)
    created_at = UtcDateTime()
    attribution = fields.Function(_attribution, allow_none=True, metadata={
        "type": "object", "nullable": True,
        "description": "The campaign credited with this order (last touch within its attribution window), "
                       "decided when it was recorded; null when none.",
        "properties": {"campaignId": {"type": "string"}, "touch": {"type": "string", "enum": ["click", "delivery"]},
                       "at": {"type": "string", "format": "date-time"}}})


OrderPage = page_of(OrderOut, "OrderPage")
