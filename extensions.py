"""Flask extensions, created unbound and bound in :func:`app.create_app`.

The Authlib registry (:mod:`services.google_oauth`) and the rate limiter (:mod:`security.limits`)
are per app: each takes its settings from that app's config at creation.
"""
from flask_cors import CORS
from flask_login import LoginManager

login_manager = LoginManager()
cors = CORS()
