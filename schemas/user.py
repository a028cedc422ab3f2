"""Signed-in user as returned by the auth routes."""
from marshmallow import Schema, fields

from schemas.common import UtcDateTime, id_field


class UserOut(Schema):
    """The public view of a staff user."""

    id = id_field()
    google_id = fields.String(data_key="googleId", allow_none=True)
    display_name = fields.String(data_key="displayName", allow_none=True)
    first_name = fields.String(data_key="firstName", allow_none=True)
    last_name = fields.String(data_key="lastName", allow_none=True)
    image = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    created_at = UtcDateTime(data_key="createdAt")
    last_login_at = UtcDateTime(data_key="lastLoginAt", allow_none=True)


class AuthStatusOut(Schema):
    """``GET /auth/status``: always answered; ``user`` only when signed in."""

    is_authenticated = fields.Boolean(data_key="isAuthenticated", required=True)
    user = fields.Nested(UserOut)
