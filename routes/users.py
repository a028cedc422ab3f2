"""``/api/users``: user administration (admin)."""
from flask import Blueprint, g

from controllers import users as controller
from routes.endpoint import endpoint
from schemas.user import UserOut, UserPage, UserPatch, UserQuery

bp = Blueprint("users", __name__)


@bp.get("")
@endpoint(query=UserQuery, response=UserPage, errors=(403,))
def list_users(query):
    """List users."""
    return controller.list_users(query)


@bp.patch("/<user_id>")
@endpoint(body=UserPatch, response=UserOut, errors=(403, 409),
          description="Disabling ends the user's sessions and API keys at once. 409 for the last admin.")
def update_user(user_id, body):
    """Change a user's role or disable them."""
    user = controller.update_user(user_id, body)
    g.audit_details = {"changes": user.changes}  # the audit entry says what changed, from what to what
    return user
