"""``/api/api-keys``: keys for curl, Postman and scripts."""
from flask import Blueprint, g, jsonify

from apidocs import doc
from controllers import api_keys as controller
from errors import ApiError
from controllers.idempotency import idempotent
from routes.helpers import dumped_page, load_body, load_query, signed_in_user
from schemas.api_key import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, ApiKeyPage, ApiKeyQuery
from security.policy import effective_role

bp = Blueprint("api_keys", __name__)
key_in, key_query, key_out = ApiKeyIn(), ApiKeyQuery(), ApiKeyOut()


@bp.post("")
@doc(body=ApiKeyIn, response=ApiKeyCreatedOut, status=201, errors=(403,), idempotent=True,
     description="The key is in the answer once and stored only as a hash. Its role defaults to "
                 "the caller's and cannot exceed it. Only a signed-in session may create keys (or "
                 "`flask create-api-key`): a request made with an API key is 403, so no key outlives "
                 "or outranks the key that would have made it.")
@idempotent(redact=("key",))
def create_api_key():
    """Create an API key."""
    if g.get("api_key_id") is not None:
        raise ApiError(403, "An API key cannot create API keys: sign in, or use `flask create-api-key`")
    document, key = controller.create_api_key(load_body(key_in), signed_in_user(), effective_role())
    return jsonify({**key_out.dump(document), "key": key}), 201


@bp.get("")
@doc(query=ApiKeyQuery, response=ApiKeyPage, description="Your keys; admins see every key.")
def list_api_keys():
    """List API keys (never the keys themselves)."""
    return dumped_page(key_out, controller.list_api_keys(load_query(key_query), signed_in_user(), effective_role()))


@bp.delete("/<key_id>")
@doc(status=204, description="Takes effect at once. Another user's key is 404 unless you are admin.")
def revoke_api_key(key_id):
    """Revoke an API key."""
    controller.revoke_api_key(key_id, signed_in_user(), effective_role())
    return "", 204
