"""Staff sign-in: turning verified OpenID Connect claims into a User."""
from bson import ObjectId

from errors import ApiError
from models import User
from models.base import utcnow


def upsert_google_user(claims):
    """Create or refresh the User for these ID-token claims in one atomic upsert."""
    sub = claims.get("sub")
    if not sub:
        raise ApiError.unauthorized("The identity provider returned no subject")
    now = utcnow()
    return User.objects(google_id=str(sub)).modify(
        upsert=True,
        new=True,
        set__display_name=claims.get("name"),
        set__first_name=claims.get("given_name"),
        set__last_name=claims.get("family_name"),
        set__image=claims.get("picture"),
        set__email=(claims.get("email") or "").lower() or None,
        set__last_login_at=now,
        set_on_insert__created_at=now,
    )


def load_user(user_id):
    """Flask-Login's user loader: the User for a session id, or None."""
    if not ObjectId.is_valid(user_id):
        return None
    return User.objects(pk=ObjectId(user_id)).first()
