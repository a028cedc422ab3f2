"""``/api/api-keys``: keys for curl, Postman and scripts."""
from flask import Blueprint, g

from controllers import api_keys as controller
from errors import ApiError
from routes.endpoint import endpoint
from routes.helpers import signed_in_user
from schemas.api_key import ApiKeyCreatedOut, ApiKeyIn, ApiKeyPage, ApiKeyQuery
from security.policy import effective_role

bp = Blueprint("api_keys", __name__)


@bp.post("")
@endpoint(body=ApiKeyIn, response=ApiKeyCreatedOut, status=201, errors=(403,), idempotent=True, redact=("key",),
          description="The key is in the answer once and stored only as a hash. Its role defaults to "
                      "the caller's and cannot exceed it. Only a signed-in session may create keys (or "
                      "`flask create-api-key`): a request made with an API key is 403, so no key outlives "
                      "or outranks the key that would have made it.")
def create_api_key(body):
    """Create an API key."""
    if g.get("auth_via") == "api_key":  # any key, the development admin key included
        raise ApiError(403, "An API key cannot create API keys: sign in, or use `flask create-api-key`")
    document, key = controller.create_api_key(body, signed_in_user(), effective_role())
    document.key = key  # shown in this answer only; the document stores its hash
    return document


@bp.get("")
@endpoint(query=ApiKeyQuery, response=ApiKeyPage, description="Your keys; admins see every key.")
def list_api_keys(query):
    """List API keys (never the keys themselves)."""
    return controller.list_api_keys(query, signed_in_user(), effective_role())


@bp.delete("/<key_id>")
@endpoint(status=204, errors=(403,),
          description="Takes effect at once. Another user's key is 404 unless you are admin. Through an "
                      "API key, only keys with no more rights than the calling key can be revoked (403): "
                      "a viewer key of an admin cannot revoke the admin's keys.")
def revoke_api_key(key_id):
    """Revoke an API key."""
    controller.revoke_api_key(key_id, signed_in_user(), effective_role(), via_key=g.get("auth_via") == "api_key")
