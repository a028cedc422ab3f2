"""Signed-in user as returned by the auth routes."""
from marshmallow import fields, validate, validates_schema

from schemas.common import (
    ApiSchema,
    InputSchema,
    PageQuery,
    StrictBoolean,
    UtcDateTime,
    id_field,
    page_of,
    require_some,
)
from models.roles import ROLES


class UserOut(ApiSchema):
    """The public view of a staff user."""

    id = id_field()
    google_id = fields.String(allow_none=True)
    display_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    image = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    created_at = UtcDateTime()
    last_login_at = UtcDateTime(allow_none=True)
    role = fields.String(metadata={"enum": list(ROLES)})
    disabled = fields.Boolean()


class MeOut(UserOut):
    """``GET /auth/me``: the caller, acting with ``role``."""

    role = fields.String(metadata={"enum": list(ROLES), "description": "the role this request acts with: "
                                   "through an API key, the lower of the key's and the account's"})
    user_role = fields.String(metadata={"enum": list(ROLES), "description": "the account's own role"})
    auth_via = fields.String(metadata={"enum": ["session", "api_key"]})


class AuthStatusOut(ApiSchema):
    """``GET /auth/status``: always answered; ``user`` only when signed in."""

    is_authenticated = fields.Boolean(required=True)
    user = fields.Nested(UserOut)


UserPage = page_of(UserOut, "UserPage")


class UserQuery(PageQuery):
    """Query string of ``GET /users``."""

    role = fields.String(validate=validate.OneOf(ROLES))


class UserPatch(InputSchema):
    """Body of ``PATCH /users/<id>``: an admin changes a role or (dis)ables an account."""

    SOME_OF = ("role", "disabled")  # at least one (the OpenAPI document says so too)

    role = fields.String(validate=validate.OneOf(ROLES))
    disabled = StrictBoolean()

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, self.SOME_OF)
