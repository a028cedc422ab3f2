"""``/api/auth``: Google sign-in, session status, logout."""
from flask import Blueprint, current_app, g, redirect
from flask_login import current_user

from controllers.auth import sign_in
from errors import ApiError
from routes.endpoint import endpoint
from security import audit
from routes.helpers import signed_in_user
from schemas.common import MessageOut
from schemas.user import AuthStatusOut, MeOut, UserOut
from security.sessions import end_session, start_session
from security.policy import effective_role
from services import google_oauth

bp = Blueprint("auth", __name__)


@bp.get("/google")
@endpoint(public=True, status=302, errors=(502, 503))
def google_login():
    """Send the browser to Google (OpenID Connect, scopes ``openid email profile``)."""
    return google_oauth.redirect_to_provider()


@bp.get("/google/callback")
@endpoint(public=True, status=302, errors=(400, 401, 403, 502, 503),
          description="Browsers arrive here from Google; 400 for a missing or tampered state, 401 when the "
                      "code or ID token is rejected, 403 for an unverified, disallowed or disabled account.")
def google_callback():
    """Finish sign-in: verify the ID token, upsert the user, start a session, go to the app."""
    claims = google_oauth.verified_claims()
    try:
        user = sign_in(claims, current_app.config)
    except ApiError as exc:  # refused: who tried, and why (the address masked)
        audit.record_current("login.refused", "user", details={"email": claims.get("email") or "",
                                                              "reason": exc.message})
        raise
    start_session(user)
    return redirect(f"{current_app.config['FRONTEND_URL']}/home")


@bp.get("/status")
@endpoint(public=True, response=AuthStatusOut)
def status():
    """Always 200: whether the caller is signed in, and who."""
    if current_user.is_authenticated:
        return {"is_authenticated": True, "user": current_user._get_current_object()}
    return {"is_authenticated": False}


@bp.post("/logout")
@endpoint(public=True, response=MessageOut)
def logout():
    """End the session."""
    end_session()
    return {"message": "Logout successful"}


class _Acting:
    """A user as this request acts: its effective ``role``, the account's ``user_role``, and how
    it signed in (a viewer-role key of an admin acts as a viewer, and says so)."""

    def __init__(self, user):
        self._user, self.role, self.user_role = user, effective_role(), user.role
        self.auth_via = g.get("auth_via") or "session"

    def __getattr__(self, name):
        return getattr(self._user, name)


@bp.get("/me")
@endpoint(response=MeOut)
def me():
    """The signed-in user, with the role this request acts with."""
    return _Acting(signed_in_user())
