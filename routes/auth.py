"""``/api/auth``: Google sign-in, session status, logout."""
from flask import Blueprint, current_app, jsonify, redirect, session
from flask_login import current_user, login_user, logout_user

from apidocs import doc
from controllers.auth import upsert_google_user
from schemas.common import MessageOut
from schemas.user import AuthStatusOut, UserOut
from services import google_oauth

bp = Blueprint("auth", __name__)
user_out = UserOut()


@bp.get("/google")
@doc(public=True, status=302, errors=(502, 503))
def google_login():
    """Send the browser to Google (OpenID Connect, scopes ``openid email profile``)."""
    return google_oauth.redirect_to_provider()


@bp.get("/google/callback")
@doc(public=True, status=302, errors=(400, 401, 502, 503),
     description="Browsers arrive here from Google; 400 for a missing or tampered state, 401 when the code or ID token is rejected.")
def google_callback():
    """Finish sign-in: verify the ID token, upsert the user, start a session, go to the app."""
    user = upsert_google_user(google_oauth.verified_claims())
    session.clear()
    login_user(user)
    return redirect(f"{current_app.config['FRONTEND_URL']}/home")


@bp.get("/status")
@doc(public=True, response=AuthStatusOut)
def status():
    """Always 200: whether the caller is signed in, and who."""
    if current_user.is_authenticated:
        return jsonify({"isAuthenticated": True, "user": user_out.dump(current_user)})
    return jsonify({"isAuthenticated": False})


@bp.post("/logout")
@doc(public=True, response=MessageOut)
def logout():
    """End the session."""
    logout_user()
    session.clear()
    return jsonify({"message": "Logout successful"})
