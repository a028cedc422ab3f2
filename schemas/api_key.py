"""API key request and response schemas."""
from marshmallow import ValidationError, fields, validate, validates

from models.base import utcnow
from schemas.common import ApiSchema, InputSchema, ObjectIdString, PageQuery, TrimmedString, UtcDateTime, id_field, page_of
from models.roles import ROLES


class ApiKeyIn(InputSchema):
    """Body of ``POST /api-keys``: a name, a role no higher than the caller's, an optional expiry."""

    name = TrimmedString(required=True, validate=validate.Length(min=1, max=100))
    role = fields.String(validate=validate.OneOf(ROLES))
    expires_at = UtcDateTime()

    @validates("expires_at")
    def _in_future(self, value, data_key):
        if value <= utcnow():
            raise ValidationError("Must be in the future.")


class ApiKeyOut(ApiSchema):
    """A key as listed: never the key itself."""

    id = id_field()
    name = fields.String()
    prefix = fields.String(metadata={"description": "First characters of the key, to recognise it"})
    role = fields.String(metadata={"enum": list(ROLES)})
    user_id = ObjectIdString()
    created_at = UtcDateTime()
    expires_at = UtcDateTime(allow_none=True)
    last_used_at = UtcDateTime(allow_none=True)
    revoked_at = UtcDateTime(allow_none=True)


class ApiKeyCreatedOut(ApiKeyOut):
    """The answer to a creation: the only time the key is shown."""

    key = fields.String(
        required=True, metadata={"description": "Shown once; send as Authorization: Bearer <key>"}
    )


ApiKeyPage = page_of(ApiKeyOut, "ApiKeyPage")


class ApiKeyQuery(PageQuery):
    """Query string of ``GET /api-keys``."""
