"""``/api/auth``: Google sign-in, session status, logout."""
from flask import Blueprint, current_app, jsonify, redirect, session
from flask_login import current_user, login_user, logout_user

from controllers.auth import upsert_google_user
from schemas.user import UserOut
from services import google_oauth

bp = Blueprint("auth", __name__)
user_out = UserOut()


@bp.get("/google")
def google_login():
    """Send the browser to Google (OpenID Connect, scopes ``openid email profile``)."""
    return google_oauth.redirect_to_provider()


@bp.get("/google/callback")
def google_callback():
    """Finish sign-in: verify the ID token, upsert the user, start a session, go to the app."""
    user = upsert_google_user(google_oauth.verified_claims())
    session.clear()
    login_user(user)
    return redirect(f"{current_app.config['FRONTEND_URL']}/home")


@bp.get("/status")
def status():
    """Always 200: whether the caller is signed in, and who."""
    if current_user.is_authenticated:
        return jsonify({"isAuthenticated": True, "user": user_out.dump(current_user)})
    return jsonify({"isAuthenticated": False})


@bp.post("/logout")
def logout():
    """End the session."""
    logout_user()
    session.clear()
    return jsonify({"message": "Logout successful"})
