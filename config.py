"""Configuration read from the environment, in one place.

Every setting the application reads is named here; ``README.md`` and ``.env.example`` document them.
"""
import logging
import os
import secrets

log = logging.getLogger(__name__)

GOOGLE_DISCOVERY_DEFAULT = "https://accounts.google.com/.well-known/openid-configuration"
TRUE_WORDS = {"1", "true", "yes", "on"}


class ConfigError(RuntimeError):
    """The environment describes a configuration the server refuses to run with."""


def _env(environ, *names, default=None):
    """First non-empty value among ``names`` (aliases), else ``default``."""
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip() != "":
            return value.strip()
    return default


def _flag(value, default=False):
    """Interpret an environment string as a boolean."""
    if value is None:
        return default
    return str(value).strip().lower() in TRUE_WORDS


def _csv(value):
    """Split a comma-separated setting into a list of non-empty items."""
    return [item.strip().rstrip("/") for item in (value or "").split(",") if item.strip()]


def from_env(environ=None):
    """Build the Flask config mapping from environment variables."""
    env = os.environ if environ is None else environ
    app_env = _env(env, "APP_ENV", "FLASK_ENV", default="development").lower()
    frontend_url = _env(env, "FRONTEND_URL", default="http://localhost:5000").rstrip("/")
    secret = _env(env, "SESSION_SECRET", "SECRET_KEY")
    cookie_secure = _flag(
        _env(env, "SESSION_COOKIE_SECURE"), default=frontend_url.startswith("https://")
    )
    return {
        "APP_ENV": app_env,
        "SECRET_KEY": secret,
        "MONGO_URI": _env(env, "MONGO_URI", "MONGODB_URI"),
        "MONGO_DB": _env(env, "MONGO_DB", default="crm"),
        "GOOGLE_CLIENT_ID": _env(env, "GOOGLE_CLIENT_ID"),
        "GOOGLE_CLIENT_SECRET": _env(env, "GOOGLE_CLIENT_SECRET"),
        "GOOGLE_DISCOVERY_URL": _env(env, "GOOGLE_DISCOVERY_URL", default=GOOGLE_DISCOVERY_DEFAULT),
        "GOOGLE_REDIRECT_URI": _env(env, "GOOGLE_REDIRECT_URI"),
        "FRONTEND_URL": frontend_url,
        "FRONTEND_DIR": _env(env, "FRONTEND_DIR"),
        "CORS_ORIGINS": _csv(_env(env, "CORS_ORIGINS")),
        "GEMINI_API_KEY": _env(env, "GEMINI_API_KEY"),
        "GEMINI_MODEL": _env(env, "GEMINI_MODEL", default="gemini-2.5-flash"),
        "PORT": int(_env(env, "PORT", default="5000")),
        "LOGIN_DISABLED": _flag(_env(env, "LOGIN_DISABLED")),
        "MAX_CONTENT_LENGTH": int(_env(env, "MAX_CONTENT_LENGTH", default=str(1024 * 1024))),
        "LOG_LEVEL": _env(env, "LOG_LEVEL", default="INFO").upper(),
        "LOG_FORMAT": _env(env, "LOG_FORMAT", default="json").lower(),
        "SESSION_COOKIE_SECURE": cookie_secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": cookie_secure,
        "JSON_SORT_KEYS": False,
    }


def finalize(config):
    """Check the assembled config and fill in development-only fallbacks.

    Production refuses to start without a session secret; development invents a random one per
    start, so sessions do not survive a restart.
    """
    production = config.get("APP_ENV") == "production"
    if not config.get("SECRET_KEY"):
        if production:
            raise ConfigError("SESSION_SECRET (or SECRET_KEY) must be set when APP_ENV=production")
        config["SECRET_KEY"] = secrets.token_urlsafe(32)
        log.warning(
            "SESSION_SECRET is not set: using a random secret for this run; "
            "sessions will not survive a restart"
        )
    if production and config.get("LOGIN_DISABLED"):
        raise ConfigError("LOGIN_DISABLED cannot be used when APP_ENV=production")
    return config


def cors_origins(config):
    """Origins allowed to call the API with credentials: the frontend and CORS_ORIGINS."""
    origins = [config["FRONTEND_URL"], *config.get("CORS_ORIGINS", [])]
    return list(dict.fromkeys(o for o in origins if o and o != "*"))
