"""``/api/events``: the track API other systems call to say what a customer did."""
from flask import Blueprint
from flask_login import current_user

from controllers import events as controller
from routes.endpoint import endpoint
from schemas.event import EventIn, EventOut

bp = Blueprint("events", __name__)


@bp.post("")
@endpoint(body=EventIn, response=EventOut, status=201, idempotent=True, errors=(404,), description=(
    "Record that a customer (by `customerId` or `email`; 404 when none matches) did something: "
    "`{name, properties, at?}`. It shows on the customer's timeline. Send an `Idempotency-Key` to make "
    "a retry safe."))
def record_event(body):
    """Record a customer's event."""
    return controller.record_event(body, current_user)
