"""``/api/suppressions``: addresses no campaign sends to, whatever its rules."""
from flask import Blueprint
from flask_login import current_user

from apidocs import doc
from controllers import consent as controller
from controllers.idempotency import idempotent
from routes.helpers import dumped, dumped_page, load_body, load_query
from schemas.import_job import SuppressionIn, SuppressionOut, SuppressionPage, SuppressionQuery

bp = Blueprint("suppressions", __name__)
suppression_in, suppression_out, suppression_query = SuppressionIn(), SuppressionOut(), SuppressionQuery()


@bp.post("")
@doc(body=SuppressionIn, response=SuppressionOut, status=201, errors=(409,), idempotent=True)
@idempotent
def add_suppression():
    """Suppress an address (409 when it is already on the list)."""
    return dumped(suppression_out, controller.add_suppression(load_body(suppression_in), current_user), 201)


@bp.get("")
@doc(query=SuppressionQuery, response=SuppressionPage)
def list_suppressions():
    """List suppressed addresses, newest first."""
    return dumped_page(suppression_out, controller.list_suppressions(load_query(suppression_query)))


@bp.delete("/<email>")
@doc(status=204, description="Campaigns may send to the address again (if its customer is subscribed).")
def remove_suppression(email):
    """Take an address off the suppression list."""
    controller.remove_suppression(email)
    return "", 204
