"""``/api/users``: user administration (admin)."""
from flask import Blueprint

from apidocs import doc
from controllers import users as controller
from routes.helpers import dumped, dumped_page, load_body, load_query
from schemas.user import UserOut, UserPage, UserPatch, UserQuery

bp = Blueprint("users", __name__)
user_query, user_patch, user_out = UserQuery(), UserPatch(), UserOut()


@bp.get("")
@doc(query=UserQuery, response=UserPage, errors=(403,))
def list_users():
    """List users."""
    return dumped_page(user_out, controller.list_users(load_query(user_query)))


@bp.patch("/<user_id>")
@doc(body=UserPatch, response=UserOut, errors=(403, 409),
     description="Disabling ends the user's sessions and API keys at once. 409 for the last admin.")
def update_user(user_id):
    """Change a user's role or disable them."""
    return dumped(user_out, controller.update_user(user_id, load_body(user_patch)))
