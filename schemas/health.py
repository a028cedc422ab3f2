"""Health probe schemas."""
from marshmallow import fields

from schemas.common import ApiSchema


class HealthOut(ApiSchema):
    """Liveness."""

    status = fields.String(required=True)


class ReadyOut(ApiSchema):
    """Readiness, with the state of each dependency."""

    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
