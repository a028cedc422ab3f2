"""Flask extensions, created unbound and bound in :func:`app.create_app`.

The Authlib registry is per app and lives in :mod:`services.google_oauth`.
"""
from flask_cors import CORS
from flask_login import LoginManager

login_manager = LoginManager()
cors = CORS()
