"""The track API (``POST /events``) and a customer's timeline (``GET /customers/<id>/timeline``)."""
import json
import re

from marshmallow import ValidationError, fields, post_load, validate, validates, validates_schema

from models.base import utcnow
from schemas.common import (
    ApiSchema,
    InputSchema,
    NormalizedEmail,
    ObjectIdString,
    PageQuery,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
)
from schemas.order import FUTURE_TOLERANCE

EVENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$"
MAX_PROPERTIES, MAX_PROPERTIES_BYTES, MAX_PROPERTIES_DEPTH = 50, 8192, 4
TIMELINE_TYPES = ("order", "message", "open", "click", "event", "flow.step")
_TYPES_RE = "|".join(re.escape(kind) for kind in TIMELINE_TYPES)
MAX_TIMELINE_PAGE = 100  # × perPage ≤ 100: at most 10,000 items deep (a timeline is read newest first)


class Properties(fields.Dict):
    """An event's properties: a JSON object of at most 50 keys, 4 levels and 8 KiB; no key starts
    with ``$`` or holds a dot (they would read as operators or paths)."""

    def __init__(self, **kwargs):
        super().__init__(keys=fields.String(), metadata={
            "maxProperties": MAX_PROPERTIES, "description": "Any JSON object: at most 50 keys, 4 levels deep and "
            "8 KiB; no key starting with $ or containing a dot, at any level."}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if len(value) > MAX_PROPERTIES:
            raise ValidationError(f"At most {MAX_PROPERTIES} keys.")
        if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_PROPERTIES_BYTES:
            raise ValidationError(f"At most {MAX_PROPERTIES_BYTES} bytes as JSON.")
        _check_keys(value, 1)
        return value


def _check_keys(node, depth):
    if depth > MAX_PROPERTIES_DEPTH:
        raise ValidationError(f"At most {MAX_PROPERTIES_DEPTH} levels deep.")
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    if isinstance(node, dict):
        for key in node:
            if key.startswith("$") or "." in key or not key:
                raise ValidationError(f"Key {key!r}: may not be empty, start with $ or contain a dot.")
    for child in children:
        if isinstance(child, (dict, list)):
            _check_keys(child, depth + 1)


class EventIn(InputSchema):
    """Body of ``POST /events``: the customer by ``customerId`` or ``email`` (one of them)."""

    OPENAPI = {"oneOf": [{"required": ["customerId"]}, {"required": ["email"]}]}

    name = fields.String(required=True, validate=validate.Regexp(EVENT_NAME_PATTERN, error=(
        "1–100 letters, digits, _ . : or -, starting with a letter or digit (e.g. cart.abandoned).")))
    customer_id = ObjectIdString()
    email = NormalizedEmail(validate=validate.Length(max=254))
    properties = Properties(load_default=dict)
    at = UtcDateTime(metadata={"description": "When it happened (default: now); at most a day ahead."})

    @validates_schema
    def _one_customer(self, data, **kwargs):
        if ("customer_id" in data) == ("email" in data):
            raise ValidationError("Name the customer by customerId or by email (one of them).", "customerId")

    @validates("at")
    def _not_in_future(self, value, data_key):
        if value > utcnow() + FUTURE_TOLERANCE:
            raise ValidationError("Must not be more than a day in the future.")


class EventOut(ApiSchema):
    """A recorded event."""

    id = id_field()
    name = fields.String(required=True)
    customer_id = fields.Function(lambda e: str(e.customer_id), metadata={"type": "string"})
    properties = fields.Dict()
    at = UtcDateTime()
    received_at = UtcDateTime()


class TimelineQuery(PageQuery):
    """Query string of ``GET /customers/<id>/timeline``: ``types`` (comma-separated) to keep some."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_TIMELINE_PAGE), metadata={
        "description": "At most 100: a timeline is read newest first (10,000 items at 100 per page)."})

    types = TrimmedString(metadata={"description": "Comma-separated: " + ", ".join(TIMELINE_TYPES),
                                    "pattern": f"^({_TYPES_RE})(,({_TYPES_RE}))*$"})

    @validates("types")
    def _known(self, value, data_key):
        unknown = [kind for kind in value.split(",") if kind.strip() not in TIMELINE_TYPES]
        if unknown or not value:
            raise ValidationError(f"A comma-separated list of: {', '.join(TIMELINE_TYPES)}.")

    @post_load
    def _as_list(self, data, **kwargs):
        """``types`` as the list of kinds to read (every kind when not given)."""
        data["types"] = [kind.strip() for kind in data["types"].split(",")] if "types" in data else list(TIMELINE_TYPES)
        return data



class TimelineItemOut(ApiSchema):
    """One thing in a customer's history: ``type`` and ``at``, and the fields of its type."""

    type = fields.String(required=True, metadata={"enum": list(TIMELINE_TYPES)})
    at = UtcDateTime(required=True)
    order_id = fields.String(metadata={"description": "order"})
    amount = fields.Float(metadata={"description": "order"})
    external_id = fields.String(metadata={"description": "order"})
    campaign_id = fields.String(metadata={"description": "message, open, click (of a campaign's message); an order "
                                                        "attributed to a campaign"})
    delivery_id = fields.String(metadata={"description": "message, open, click"})
    status = fields.String(metadata={"description": "message: PENDING, SENT, DELIVERED or FAILED"})
    link = fields.Integer(metadata={"description": "click: the link's index in the message"})
    suspected_bot = fields.Boolean(metadata={"description": "open, click"})
    reason = fields.String(allow_none=True, metadata={"description": "open, click: why it looks like a machine"})
    event_id = fields.String(metadata={"description": "event"})
    name = fields.String(metadata={"description": "event"})
    properties = fields.Dict(metadata={"description": "event"})
    flow_id = fields.String(metadata={"description": "flow.step; message, open, click (of a flow's message)"})
    step = fields.Integer(metadata={"description": "flow.step: the step's index; message, open, click (of a flow's "
                                                   "message)"})
    step_type = fields.String(metadata={"description": "flow.step: wait, branch, send, update or exit"})
    outcome = fields.String(allow_none=True, metadata={
        "description": "flow.step: how it ended (null while it runs or waits): waited, yes, no, sent, failed, capped, "
                       "suppressed, updated, exited"})


TimelinePage = page_of(TimelineItemOut, "TimelinePage")
