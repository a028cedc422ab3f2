"""``/api/auth``: Google sign-in, session status, logout."""
from flask import Blueprint, current_app, redirect
from flask_login import current_user

from controllers.auth import sign_in
from routes.endpoint import endpoint
from routes.helpers import signed_in_user
from schemas.common import MessageOut
from schemas.user import AuthStatusOut, UserOut
from security.sessions import end_session, start_session
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
    user = sign_in(google_oauth.verified_claims(), current_app.config)
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


@bp.get("/me")
@endpoint(response=UserOut)
def me():
    """The signed-in user, with their role."""
    return signed_in_user()
