"""Audit log schemas."""
from marshmallow import fields, validate

from schemas.common import ApiSchema, ObjectIdString, PageQuery, UtcDateTime, id_field, page_of


class AuditQuery(PageQuery):
    """Query string of ``GET /audit``."""

    action = fields.String(validate=validate.Length(min=1, max=100))
    actor = ObjectIdString()
    date_from = UtcDateTime(data_key="from")
    date_to = UtcDateTime(data_key="to")


class AuditEventOut(ApiSchema):
    """One audit event."""

    id = id_field()
    at = UtcDateTime()
    action = fields.String()
    actor_id = ObjectIdString(allow_none=True)
    actor_email = fields.String(allow_none=True)
    via = fields.String()
    target_type = fields.String(allow_none=True)
    target_id = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    details = fields.Dict()


AuditPage = page_of(AuditEventOut, "AuditPage")
