"""``/api/suppressions``: addresses no campaign sends to, whatever its rules."""
from flask import Blueprint
from flask_login import current_user

from controllers import consent as controller
from routes.endpoint import endpoint
from schemas.import_job import SuppressionIn, SuppressionOut, SuppressionPage, SuppressionQuery

bp = Blueprint("suppressions", __name__)


@bp.post("")
@endpoint(body=SuppressionIn, response=SuppressionOut, status=201, errors=(409,), idempotent=True)
def add_suppression(body):
    """Suppress an address (409 when it is already on the list)."""
    return controller.add_suppression(body, current_user)


@bp.get("")
@endpoint(query=SuppressionQuery, response=SuppressionPage)
def list_suppressions(query):
    """List suppressed addresses, newest first."""
    return controller.list_suppressions(query)


@bp.delete("/<email>")
@endpoint(status=204, description="Campaigns may send to the address again (if its customer is subscribed).")
def remove_suppression(email):
    """Take an address off the suppression list."""
    controller.remove_suppression(email)
