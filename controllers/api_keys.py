"""API key operations. Callers manage their own keys; admins manage everyone's."""
from controllers.common import object_id_or_404, paginate
from errors import ApiError
from models import ApiKey, User
from models.api_key import hash_key
from models.base import utcnow
from security import api_keys
from security.api_keys import new_key
from models.roles import ADMIN, at_least


def _visible(actor, role):
    """Keys the caller may see: their own, or all for an admin (object-level authorisation)."""
    return ApiKey.objects if role == ADMIN else ApiKey.objects(user_id=actor.pk)


def create_api_key(data, actor, role):
    """Issue a key for ``actor`` with at most ``role``: ``(document, plaintext key)``, shown once."""
    wanted = data.get("role", role)
    if not at_least(role, wanted):
        raise ApiError(403, f"A key cannot have more rights than its creator ({role})")
    key, prefix = new_key()
    doc = ApiKey(
        name=data["name"],
        prefix=prefix,
        key_hash=hash_key(key),
        role=wanted,
        user_id=actor.pk,
        expires_at=data.get("expires_at"),
    ).save(force_insert=True)
    return doc, key


def list_api_keys(query, actor, role):
    """Newest first."""
    queryset = _visible(actor, role).order_by("-created_at", "-id")
    return paginate(queryset, query["page"], query["per_page"])


def revoke_api_key(key_id, actor, role, via_key=False):
    """Revoke a key at once (idempotent); another user's key is not found. Through a key (``via_key``,
    acting with ``role``), only a key with no more rights than ``role``."""
    pk = object_id_or_404("API key", key_id)
    target = _visible(actor, role).filter(pk=pk).only("role").first()
    if target is None:
        raise ApiError.not_found("API key", key_id)
    if via_key and not at_least(role, target.role):
        raise ApiError(403, f"A key acting as {role} cannot revoke a key with the {target.role} role")
    ApiKey.objects(pk=pk, revoked_at=None).update_one(set__revoked_at=utcnow())
    api_keys.forget()  # this process at once; the others within API_KEY_CACHE_S


def create_for_email(email, name, role=None):
    """The CLI's way in: a key for an existing user found by email."""
    user = User.objects(email=email.strip().lower()).first()
    if user is None:
        raise ApiError.not_found("user with email", email)
    if user.disabled:
        raise ApiError(403, f"User {email} is disabled")
    return create_api_key({"name": name, **({"role": role} if role else {})}, user, user.role)
