"""User administration: roles and disabling, never leaving the deployment without an admin."""
from controllers.common import get_or_404, object_id_or_404, paginate
from errors import ApiError
from models import ApiKey, User
from models.base import utcnow
from models.roles import ADMIN
from security import api_keys

LAST_ADMIN = "Cannot demote or disable the last admin"


def list_users(query):
    """Users, newest first, optionally by role."""
    filters = {"role": query["role"]} if "role" in query else {}
    return paginate(User.objects(**filters).order_by("-created_at", "-id"), query["page"], query["per_page"])


def _enabled_admins(exclude=None):
    queryset = User.objects(role=ADMIN, disabled__ne=True)
    return queryset.filter(pk__ne=exclude).count() if exclude else queryset.count()


def update_user(user_id, data):
    """Change role and/or disabled. Disabling ends the user's sessions and keys at once.

    The last enabled admin cannot lose that status: checked before the update, and re-checked
    after it (two admins demoting each other at the same moment), reverting if needed.
    """
    pk = object_id_or_404("user", user_id)
    target = get_or_404(User, "user", user_id)
    loses_admin = target.role == ADMIN and not target.disabled and (
        data.get("role", ADMIN) != ADMIN or data.get("disabled") is True
    )
    if loses_admin and _enabled_admins(exclude=pk) == 0:
        raise ApiError.conflict(LAST_ADMIN)
    updates = {f"set__{name}": value for name, value in data.items()}
    if data.get("disabled") is True:
        updates["set__sessions_valid_after"] = utcnow()  # ends every session for good
    user = User.objects(pk=pk).modify(new=True, **updates)
    api_keys.forget()  # a demoted or disabled owner's keys: this process at once, others within a second
    if loses_admin and _enabled_admins() == 0:
        User.objects(pk=pk).update_one(set__role=ADMIN, set__disabled=False)
        raise ApiError.conflict(LAST_ADMIN)
    if data.get("disabled") is True:  # and revokes every key: re-enabling brings neither back
        ApiKey.objects(user_id=pk, revoked_at=None).update(set__revoked_at=utcnow())
    user.changes = {name: {"from": getattr(target, name), "to": getattr(user, name)}
                    for name in data if getattr(target, name) != getattr(user, name)}  # for the audit entry
    return user
