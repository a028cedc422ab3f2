"""Application factory: reads as the table of contents of the server."""
from flask import Flask

import config as config_module
from errors import error_response, register_error_handlers
from extensions import cors, login_manager
from models import init_db
from logs import configure_logging, init_request_logging
from routes import docs, frontend, health, register_blueprints
from services import google_oauth


def create_app(config=None):
    """Build the Flask app from the environment, with ``config`` overriding it (tests)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(config_module.from_env())
    app.config.update(config or {})
    configure_logging(app)
    config_module.finalize(app.config)
    app.url_map.strict_slashes = False
    app.json.sort_keys = False

    init_request_logging(app)
    register_extensions(app)
    register_blueprints(app)
    health.init_app(app)
    docs.init_app(app)
    register_error_handlers(app)
    register_commands(app)
    frontend.init_app(app)
    return app


def register_commands(app):
    """``flask export-postman``."""
    from apidocs.cli import export_postman

    app.cli.add_command(export_postman)


def register_extensions(app):
    """Database, login sessions, CORS and the Google client."""
    init_db(app)

    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.unauthorized_handler(lambda: error_response(401, "Authentication required"))
    if app.config.get("LOGIN_DISABLED"):
        app.logger.warning(
            "LOGIN_DISABLED=true: every data route is open to anyone who can reach this server. "
            "Use only for local tinkering."
        )

    cors.init_app(
        app,
        origins=config_module.cors_origins(app.config),
        supports_credentials=True,
        expose_headers=["X-Total-Count"],
    )
    google_oauth.init_app(app)


def _load_user(user_id):
    from controllers.auth import load_user

    return load_user(user_id)
