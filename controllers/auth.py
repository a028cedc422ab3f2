"""Staff sign-in: turning verified OpenID Connect claims into a User with a role."""
import logging

import mongoengine
from bson import ObjectId
from flask import current_app
from pymongo.errors import DuplicateKeyError

from config import is_production
from errors import ApiError
from models import User
from models.base import utcnow
from models.roles import ADMIN
from security.allow_list import may_sign_in, named

log = logging.getLogger(__name__)
FIRST_ADMIN_MARKER = "first_admin"


def _refuse(reason):
    return ApiError(403, f"Sign-in refused: {reason}")


def _verified_email(claims, settings):
    """The verified email of the claims, if this deployment lets it in.

    With ``ALLOWED_EMAIL_DOMAINS`` or ``INVITED_EMAILS`` set, only those domains, those emails and
    ``ADMIN_EMAILS`` may sign in; with neither, any verified account (development, or production with
    ``ALLOW_ANY_GOOGLE_ACCOUNT=true``: production refuses to start otherwise).
    """
    email = str(claims.get("email") or "").strip().lower()
    if not email or claims.get("email_verified") not in (True, "true"):
        raise _refuse("the Google account has no verified email address")
    domain = email.rsplit("@", 1)[-1]
    if not may_sign_in(email, settings):
        raise _refuse(f"{email} is not invited and {domain} accounts may not sign in here")
    if (domain in settings["ALLOWED_EMAIL_DOMAINS"] and not named(email, settings)
            and str(claims.get("hd") or "").lower() != domain):
        # Google's advice: an address at the domain is not proof of the domain's Workspace (anyone
        # can make a Google account with any address); the hosted-domain claim is
        raise _refuse(f"{email} is not an account of the {domain} Google Workspace")
    return email


def sign_in(claims, settings):
    """Create or refresh the User for verified ID-token claims (one atomic upsert) and return it.

    New users get ``admin`` when their email is in ADMIN_EMAILS, else DEFAULT_ROLE. Only when
    FIRST_USER_ADMIN asks for it (development and testing: production refuses the setting), with no
    ADMIN_EMAILS, the first user of a deployment without admins becomes admin.
    """
    sub = claims.get("sub")
    if not sub:
        raise ApiError.unauthorized("Sign-in failed: the identity provider returned no subject")
    email = _verified_email(claims, settings)
    existing = User.objects(google_id=str(sub)).only("disabled").first()
    if existing is not None and existing.disabled:
        raise _refuse("this account is disabled")
    admin_emails = settings["ADMIN_EMAILS"]
    now = utcnow()
    user = User.objects(google_id=str(sub)).modify(
        upsert=True,
        new=True,
        set__display_name=claims.get("name"),
        set__first_name=claims.get("given_name"),
        set__last_name=claims.get("family_name"),
        set__image=claims.get("picture"),
        set__email=email,
        set__last_login_at=now,
        set_on_insert__created_at=now,
        set_on_insert__role=ADMIN if email in admin_emails else settings["DEFAULT_ROLE"],
        set_on_insert__disabled=False,
    )
    if (settings.get("FIRST_USER_ADMIN") and not admin_emails and not is_production(settings) and user.role != ADMIN
            and _claim_first_admin(user)):
        user.reload()
    return user


def _claim_first_admin(user):
    """Make ``user`` admin if no admin exists yet; a marker document lets exactly one user win."""
    if User.objects(role=ADMIN).count():
        return False
    try:
        mongoengine.get_db()["app_state"].insert_one(
            {"_id": FIRST_ADMIN_MARKER, "user": user.pk, "at": utcnow()}
        )
    except DuplicateKeyError:
        return False
    User.objects(pk=user.pk).update_one(set__role=ADMIN)
    log.warning(
        "ADMIN_EMAILS is not set and no admin existed: %s, the first user to sign in, is now admin",
        user.email,
    )
    return True


def load_user(user_id):
    """Flask-Login's user loader: an enabled User for a session id, or None."""
    if not ObjectId.is_valid(user_id):
        return None
    user = User.objects(pk=ObjectId(user_id), disabled__ne=True).first()
    return user if user is not None and may_sign_in(user.email, current_app.config) else None
