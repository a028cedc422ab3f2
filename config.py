"""Configuration read from the environment, in one place.

Every setting the application reads is named here; ``README.md`` and ``.env.example`` document them.
"""
import logging
import math
import os
import secrets
import string

log = logging.getLogger(__name__)

GOOGLE_DISCOVERY_DEFAULT = "https://accounts.google.com/.well-known/openid-configuration"
TRUE_WORDS = {"1", "true", "yes", "on"}
RELAXED_ENVS = ("development", "testing")  # every other APP_ENV, typos included, is production
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT_CHARS = 10
MIN_SECRET_BITS = 128
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


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


def _number(environ, name, default):
    """A positive number setting."""
    value = float(_env(environ, name, default=str(default)))
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


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
        "MONGO_TIMEOUT_MS": int(_number(env, "MONGO_TIMEOUT_MS", 3000)),
        "GOOGLE_CLIENT_ID": _env(env, "GOOGLE_CLIENT_ID"),
        "GOOGLE_CLIENT_SECRET": _env(env, "GOOGLE_CLIENT_SECRET"),
        "GOOGLE_DISCOVERY_URL": _env(env, "GOOGLE_DISCOVERY_URL", default=GOOGLE_DISCOVERY_DEFAULT),
        "GOOGLE_REDIRECT_URI": _env(env, "GOOGLE_REDIRECT_URI"),
        "PUBLIC_URL": _env(env, "PUBLIC_URL"),
        "FRONTEND_URL": frontend_url,
        "FRONTEND_DIR": _env(env, "FRONTEND_DIR"),
        "CORS_ORIGINS": _csv(_env(env, "CORS_ORIGINS")),
        "GEMINI_API_KEY": _env(env, "GEMINI_API_KEY"),
        "GEMINI_MODEL": _env(env, "GEMINI_MODEL", default="gemini-2.5-flash"),
        "GEMINI_API_ENDPOINT": _env(env, "GEMINI_API_ENDPOINT"),
        "GEMINI_TIMEOUT_S": _number(env, "GEMINI_TIMEOUT_S", 20),
        "GEMINI_RETRIES": int(_env(env, "GEMINI_RETRIES", default="2")),
        "GEMINI_RETRY_BACKOFF_S": float(_env(env, "GEMINI_RETRY_BACKOFF_S", default="1")),
        "GEMINI_RETRY_AFTER_S": int(_env(env, "GEMINI_RETRY_AFTER_S", default="30")),
        "RATELIMIT_AI": _env(env, "RATELIMIT_AI", default="30 per minute"),
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
        # Access control
        "ADMIN_EMAILS": [e.lower() for e in _csv(_env(env, "ADMIN_EMAILS"))],
        "ALLOWED_EMAIL_DOMAINS": [d.lower().lstrip("@") for d in _csv(_env(env, "ALLOWED_EMAIL_DOMAINS"))],
        "INVITED_EMAILS": [e.lower() for e in _csv(_env(env, "INVITED_EMAILS"))],
        "ALLOW_ANY_GOOGLE_ACCOUNT": _flag(_env(env, "ALLOW_ANY_GOOGLE_ACCOUNT")),
        "DEFAULT_ROLE": _env(env, "DEFAULT_ROLE", default="viewer").lower(),
        "SESSION_REDIS_URL": _env(env, "SESSION_REDIS_URL"),
        "SESSION_IDLE_MINUTES": _number(env, "SESSION_IDLE_MINUTES", 60),
        "SESSION_MAX_HOURS": _number(env, "SESSION_MAX_HOURS", 12),
        "TRUSTED_PROXIES": int(_env(env, "TRUSTED_PROXIES", default="0")),
        # Rate limits (Flask-Limiter notation, e.g. "10 per minute;100 per hour")
        "RATELIMIT_ENABLED": _flag(_env(env, "RATELIMIT_ENABLED"), default=True),
        "RATELIMIT_STORAGE_URI": _env(env, "RATELIMIT_STORAGE_URI", default="memory://"),
        "RATELIMIT_LOGIN": _env(env, "RATELIMIT_LOGIN", default="20 per minute"),
        "RATELIMIT_WRITE": _env(env, "RATELIMIT_WRITE", default="120 per minute"),
        "RATELIMIT_WRITE_IP": _env(env, "RATELIMIT_WRITE_IP", default="600 per minute"),
        "RATELIMIT_KEY_PREFIX": _env(env, "RATELIMIT_KEY_PREFIX", default="crm"),
        # Campaign engine
        "CELERY_BROKER_URL": _env(env, "CELERY_BROKER_URL"),
        "CELERY_QUEUE": _env(env, "CELERY_QUEUE", default="crm"),
        "DISPATCH_BATCH_SIZE": int(_env(env, "DISPATCH_BATCH_SIZE", default="500")),
        "DISPATCH_CLAIM_LEASE_S": _number(env, "DISPATCH_CLAIM_LEASE_S", 300),
        "ENGINE_THREADS": int(_number(env, "ENGINE_THREADS", 4)),
        "ENGINE_CONTROL_CHECK_S": _number(env, "ENGINE_CONTROL_CHECK_S", 0.25),
        "ENGINE_FLUSH_S": _number(env, "ENGINE_FLUSH_S", 1),
        "SCHEDULER_INTERVAL_S": _number(env, "SCHEDULER_INTERVAL_S", 15),
        "SCHEDULER_ENABLED": _flag(_env(env, "SCHEDULER_ENABLED"), default=True),
        "MESSAGE_ID_DOMAIN": _env(env, "MESSAGE_ID_DOMAIN", default="crm.local"),
        "VENDOR": _env(env, "VENDOR", default="simulated").lower(),
        "VENDOR_SUCCESS_RATE": float(_env(env, "VENDOR_SUCCESS_RATE", default="0.9")),
        "VENDOR_MAX_ATTEMPTS": int(_number(env, "VENDOR_MAX_ATTEMPTS", 5)),
        "VENDOR_RETRY_BASE_S": _number(env, "VENDOR_RETRY_BASE_S", 1),
        "VENDOR_RETRY_MAX_S": _number(env, "VENDOR_RETRY_MAX_S", 60),
        "VENDOR_SEED": _env(env, "VENDOR_SEED", default="crm"),
        "VENDOR_RECEIPTS": _flag(_env(env, "VENDOR_RECEIPTS"), default=True),
        "VENDOR_RECEIPT_URL": _env(env, "VENDOR_RECEIPT_URL"),
        "VENDOR_RECEIPT_DELAY_S": _number(env, "VENDOR_RECEIPT_DELAY_S", 1),
        "VENDOR_WEBHOOK_SECRET": _env(env, "VENDOR_WEBHOOK_SECRET"),
        "SMTP_HOST": _env(env, "SMTP_HOST", default="localhost"),
        "SMTP_PORT": int(_env(env, "SMTP_PORT", default="25")),
        "SMTP_FROM": _env(env, "SMTP_FROM", default="crm@localhost"),
        "SMTP_USERNAME": _env(env, "SMTP_USERNAME"),
        "SMTP_PASSWORD": _env(env, "SMTP_PASSWORD"),
        "SMTP_STARTTLS": _flag(_env(env, "SMTP_STARTTLS")),
        "SMTP_TIMEOUT_S": _number(env, "SMTP_TIMEOUT_S", 30),
        # Data in and out
        "MAX_IMPORT_MB": _number(env, "MAX_IMPORT_MB", 50),
        "IMPORT_CHUNK_ROWS": int(_number(env, "IMPORT_CHUNK_ROWS", 1000)),
        "IMPORT_LEASE_S": _number(env, "IMPORT_LEASE_S", 300),
        "UNSUBSCRIBE_SECRET": _env(env, "UNSUBSCRIBE_SECRET"),
    }


def finalize(config):
    """Check the assembled config and fill in development-only fallbacks.

    Production refuses to start without a session secret; development invents a random one per
    start, so sessions do not survive a restart.
    """
    production = is_production(config)
    if config.get("DEFAULT_ROLE") not in ("viewer", "marketer"):
        raise ConfigError("DEFAULT_ROLE must be viewer or marketer")
    if config.get("VENDOR") not in ("simulated", "smtp"):
        raise ConfigError("VENDOR must be simulated or smtp")
    if not 0 <= config.get("VENDOR_SUCCESS_RATE", 0.9) <= 1:
        raise ConfigError("VENDOR_SUCCESS_RATE must be between 0 and 1")
    if config.get("CELERY_BROKER_URL") and not config.get("MONGO_URI") and not config.get("TESTING"):
        raise ConfigError(
            "CELERY_BROKER_URL needs MONGO_URI: a separate worker cannot see the embedded in-memory "
            "database of this process. Set MONGO_URI, or unset CELERY_BROKER_URL to run tasks in-process."
        )
    if not config.get("VENDOR_WEBHOOK_SECRET") and not production:
        config["VENDOR_WEBHOOK_SECRET"] = secrets.token_urlsafe(32)
        log.warning("VENDOR_WEBHOOK_SECRET is not set: using a random one for this process")
    if production:
        problems = production_problems(config)
        if problems:
            raise ConfigError("Refusing to start in production: " + "; ".join(problems))
    if config.get("LOGIN_DISABLED") and config.get("APP_ENV") != "development":
        raise ConfigError("LOGIN_DISABLED is only allowed with APP_ENV=development")
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = secrets.token_urlsafe(32)
        log.warning(
            "SESSION_SECRET is not set: using a random secret for this run; "
            "sessions will not survive a restart"
        )
    return config


def secret_bits(secret):
    """A generous estimate of a secret's entropy in bits; 0 for runs, sequences and repetitions.

    Length × log2 of the character classes used (digits, lower, upper, other), so a random hex or
    base64 secret of 128 bits passes; ``0123456789…``, ``abcabc…`` or ``aaaa…`` do not.
    """
    if len(secret) < 2 or len(set(secret)) < MIN_SECRET_DISTINCT_CHARS:
        return 0.0
    steps = sum(1 for a, b in zip(secret, secret[1:]) if abs(ord(a) - ord(b)) == 1)
    if steps / (len(secret) - 1) > 0.5 or secret in (secret + secret)[1:-1]:  # sequence or periodic
        return 0.0
    classes = (string.digits, string.ascii_lowercase, string.ascii_uppercase)
    pool = sum(len(c) for c in classes if any(ch in c for ch in secret))
    pool += 32 if any(not any(ch in c for c in classes) for ch in secret) else 0
    return len(secret) * math.log2(pool)


def is_production(config):
    """Only ``development`` and ``testing`` relax anything; any other value is production."""
    return config.get("APP_ENV") not in RELAXED_ENVS


def production_problems(config):
    """Why this config is unsafe for production (empty when it is fine)."""
    problems = []
    secret = config.get("SECRET_KEY") or ""
    if not secret:
        problems.append("SESSION_SECRET (or SECRET_KEY) is not set")
    elif len(secret) < MIN_SECRET_LENGTH or secret_bits(secret) < MIN_SECRET_BITS:
        problems.append(f"SESSION_SECRET is weak (use {MIN_SECRET_LENGTH}+ random characters, at least "
                        f"{MIN_SECRET_BITS} bits: {MAKE_SECRET})")
    if not config.get("SESSION_COOKIE_SECURE"):
        problems.append("SESSION_COOKIE_SECURE is off (serve over https and set FRONTEND_URL to https)")
    if config.get("LOGIN_DISABLED"):
        problems.append("LOGIN_DISABLED is set")
    google = config.get("GOOGLE_CLIENT_ID") and config.get("GOOGLE_CLIENT_SECRET")
    restricted = config.get("ALLOWED_EMAIL_DOMAINS") or config.get("INVITED_EMAILS")
    if google and not restricted and not config.get("ALLOW_ANY_GOOGLE_ACCOUNT"):
        problems.append("sign-in is open to every Google account: set ALLOWED_EMAIL_DOMAINS or "
                        "INVITED_EMAILS (or ALLOW_ANY_GOOGLE_ACCOUNT=true if that is really meant)")
    if google and not config.get("ADMIN_EMAILS"):
        problems.append("ADMIN_EMAILS is not set (production makes nobody admin by default)")
    if google and not (config.get("GOOGLE_REDIRECT_URI") or config.get("PUBLIC_URL")):
        problems.append("neither GOOGLE_REDIRECT_URI nor PUBLIC_URL is set (the sign-in redirect must "
                        "not come from the request's Host header)")
    return problems


def cors_origins(config):
    """Origins allowed to call the API with credentials: the frontend and CORS_ORIGINS."""
    origins = [config["FRONTEND_URL"], *config.get("CORS_ORIGINS", [])]
    return list(dict.fromkeys(o for o in origins if o and o != "*"))
