"""Application factory: reads as the table of contents of the server."""
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

import config as config_module
import metrics
from errors import register_error_handlers
from extensions import cors, login_manager
from logs import configure_logging, init_request_logging
from models import init_db
from models.db import ensure_indexes_when_reachable
import engine
from engine import scheduler
from migrations import runner as migrations
from routes import docs, frontend, health, register_blueprints
from routes.endpoint import allow_bulk_bodies
from security import api_keys, headers, limits, policy, sessions
from services import gemini, google_oauth, queue


def create_app(config=None):
    """Build the Flask app from the environment, with ``config`` overriding it (tests)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(config_module.from_env())
    app.config.update(config or {})
    if "APP_ENV" in (config or {}):
        app.config["APP_ENV_CHOSEN"] = True
    configure_logging(app)
    config_module.finalize(app.config)
    app.url_map.strict_slashes = False
    app.json.sort_keys = False
    if app.config["TRUSTED_PROXIES"]:
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    init_request_logging(app)
    metrics.init_app(app)  # every answer, timed from the request log's start
    app.before_request(allow_bulk_bodies)
    frontend.init_app(app)  # before the access checks: the app's own pages are public
    register_extensions(app)
    register_security(app)
    register_blueprints(app)
    health.init_app(app)
    docs.init_app(app)
    register_error_handlers(app)
    register_commands(app)
    return app


def start_serving(app):
    """What a long-running process (web server, worker) does once: never a ``flask`` command.

    Indexes are created in the background, so the process starts while the database is down; then a
    database behind this code's data migrations is reported in the log (the embedded store starts
    empty: nothing to migrate).
    """
    if not app.testing:
        ensure_indexes_when_reachable(app, then=migrations.warn_if_pending if app.config.get("MONGO_URI") else None)
    return app


def start_web(app, dev_key_hash=None):
    """:func:`start_serving` for the web server: also the dev admin key (``dev_key_hash``: the one
    gunicorn's master minted) and the in-process scheduler."""
    start_serving(app)
    if app.config["APP_ENV"] == "development" and not google_oauth.configured(app):
        api_keys.issue_dev_admin_key(app, dev_key_hash)
    if app.config["SCHEDULER_ENABLED"] and not app.testing and not queue.broker_configured(app):
        scheduler.start_poller(app)
    return app


def register_extensions(app):
    """Database, login, CORS, the Google and Gemini clients, the task queue and the campaign engine."""
    init_db(app)
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
    login_manager.request_loader(api_keys.load_user_from_request)
    if app.config.get("LOGIN_DISABLED"):
        app.logger.warning(
            "LOGIN_DISABLED=true: every data route is open to anyone who can reach this server. "
            "Use only for local tinkering."
        )
    cors.init_app(
        app,
        resources={r"^(?!/api/t/).*": {}},  # every route but the links in mail (images and navigations)
        origins=config_module.cors_origins(app.config),
        supports_credentials=True,
        expose_headers=["X-Total-Count", "X-Request-ID", "Retry-After"],
    )
    google_oauth.init_app(app)
    gemini.init_app(app)
    queue.init_app(app)
    engine.init_app(app)


def register_security(app):
    """Server-side sessions, rate limits, the access policy (with CSRF and audit), headers.

    Order matters: session timeouts are applied before the limiter and the policy look at the user.
    """
    sessions.init_app(app)
    limits.init_app(app)
    policy.init_app(app)
    headers.init_app(app)


def register_commands(app):
    """``flask export-postman``, ``flask create-api-key``, ``flask seed-demo``, ``flask import``,
    ``flask db upgrade|status``, ``flask rfm``, ``flask recount-reports``."""
    from apidocs.cli import export_postman
    from controllers.cli import (create_api_key, db_group, import_command, recount_reports, rfm_command,
                                 seed_demo_command)

    for command in (export_postman, create_api_key, seed_demo_command, import_command, db_group, rfm_command,
                    recount_reports):
        app.cli.add_command(command)


def _load_user(user_id):
    from controllers.auth import load_user

    return load_user(user_id)
