"""Signed-in user as returned by the auth routes."""
from marshmallow import Schema, fields

from schemas.common import UtcDateTime, id_field


class UserOut(Schema):
    """The public view of a staff user."""

    id = id_field()
    google_id = fields.String(data_key="googleId")
    display_name = fields.String(data_key="displayName")
    first_name = fields.String(data_key="firstName")
    last_name = fields.String(data_key="lastName")
    image = fields.String()
    email = fields.String()
    created_at = UtcDateTime(data_key="createdAt")
    last_login_at = UtcDateTime(data_key="lastLoginAt")
