"""Serve the React build from ``FRONTEND_DIR`` on the same origin, with a history fallback."""
import os

from flask import request, send_from_directory
from werkzeug.security import safe_join


# Routes outside /api that browsers or probes reach on purpose: never replaced by index.html.
NOT_CLIENT_ROUTES = {"legacy_auth", "health"}


def _wants_html():
    """True for a browser navigation (HTML preferred over JSON), false for API clients."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def init_app(app):
    """Register the build's files and the fallback for client-side routes."""
    root = app.config.get("FRONTEND_DIR")
    if not root:
        return
    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "index.html")):
        app.logger.warning("FRONTEND_DIR=%s has no index.html; not serving the frontend", root)
        return

    def index():
        return send_from_directory(root, "index.html", max_age=0)

    @app.before_request
    def serve_frontend():
        """Files of the build win; HTML navigations to client routes get index.html."""
        if request.method not in ("GET", "HEAD") or request.path.startswith("/api/"):
            return None
        if request.blueprint in NOT_CLIENT_ROUTES:
            return None
        relative = request.path.lstrip("/")
        target = safe_join(root, relative) if relative else None
        if target and os.path.isfile(target):
            return send_from_directory(root, relative)
        if relative == "" or _wants_html():
            return index()
        return None
