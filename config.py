"""Configuration read from the environment, in one place: the :data:`SETTINGS` table.

Every setting the application reads is a row of that table (name, kind, default, meaning); the
README's configuration table and ``.env.example`` are generated from it (``python config.py
--write``) and a test checks they have not drifted.
"""
import ipaddress
import logging
import math
import os
import re
import secrets
import string
import sys
import textwrap
import zoneinfo
from dataclasses import dataclass

log = logging.getLogger(__name__)
FREQUENCY_CAP_RE = re.compile(r"^([1-9][0-9]{0,3})/([1-9][0-9]{0,3})h$")
QUIET_HOURS_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")

GOOGLE_DISCOVERY_DEFAULT = "https://accounts.google.com/.well-known/openid-configuration"
TRUE_WORDS = {"1", "true", "yes", "on"}
RELAXED_ENVS = ("development", "testing")  # every other APP_ENV, typos included, is production
MIN_SECRET_LENGTH = 32
# A random 32-character hex secret has fewer than 7 distinct characters once in 5 billion; with 10
# it was one in 10,000 (CI met one: d92dfede27eddfede5d6def217e5f66e).
MIN_SECRET_DISTINCT_CHARS = 7
MIN_SECRET_BITS = 128
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
# Secrets production checks: the app's own (strength and placeholders) and others' (placeholders only)
OWN_SECRETS = (("SECRET_KEY", "SESSION_SECRET"), ("UNSUBSCRIBE_SECRET", "UNSUBSCRIBE_SECRET"),
               ("VENDOR_WEBHOOK_SECRET", "VENDOR_WEBHOOK_SECRET"), ("METRICS_TOKEN", "METRICS_TOKEN"))
OTHER_SECRETS = ("GOOGLE_CLIENT_SECRET", "SMTP_PASSWORD")
PLACEHOLDER_WORDS = ("change-me", "change_me", "changeme", "example", "secret", "placeholder", "replace-me",
                     "your-")  # a value containing one was copied from documentation (none is likely by chance)


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


def _positive(name, raw, default):
    """A positive number setting: ``raw`` from the environment, else ``default``."""
    try:
        value = float(default if raw is None else raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, not {raw!r}")
    return value


@dataclass(frozen=True)
class Setting:
    """One environment variable: how it is read, its default, and what it means.

    ``kind``: ``text``, ``lower``, ``upper``, ``url`` (no trailing ``/``), ``int``, ``float``,
    ``positive`` (a number > 0), ``count`` (a whole number > 0), ``flag``, ``list`` (comma-separated),
    ``emails`` (lower-case list), ``domains`` (lower-case, no ``@``). ``key`` is the Flask config key
    when it differs from ``name``; ``aliases`` are read too; ``shown`` is the README's default when the
    value is not simply ``default``; ``example`` is the value written in ``.env.example`` (commented
    out unless ``active``).
    """

    name: str
    kind: str
    default: object
    help: str
    group: str
    aliases: tuple = ()
    key: str | None = None
    shown: str | None = None
    example: str | None = None
    active: bool = False


def _settings(group, *rows):
    return [Setting(*row[:4], group=group, **(row[4] if len(row) > 4 else {})) for row in rows]


SECRET_HINT = f"`{MAKE_SECRET}`"
SETTINGS = [
    *_settings(
        "Runtime",
        ("APP_ENV", "lower", "development", "only `development` and `testing` relax anything: every other "
         "value (`staging`, a typo) is production, which refuses to start with a missing, weak or "
         "placeholder secret, insecure cookies or `LOGIN_DISABLED`. Left unset it means development only "
         "while that is safe: with Google sign-in configured, or gunicorn listening beyond loopback, the "
         "server refuses to start until APP_ENV is set", {"aliases": ("FLASK_ENV",), "active": True,
                                                          "shown": "development (see the text)"}),
        ("FIRST_USER_ADMIN", "flag", False, "development only: with no `ADMIN_EMAILS`, the first user to "
         "sign in becomes admin (refused in production)"),
        ("PORT", "int", 5000, "port for `serve.sh` (`HOST` 127.0.0.1: set `HOST=0.0.0.0` to listen beyond "
         "this machine, which a development server warns about loudly; `THREADS` 8)", {"active": True}),
        ("LOG_LEVEL", "upper", "INFO", "log level", {"active": True}),
        ("LOG_FORMAT", "lower", "json", "`json`: one JSON object per line; `text`: plain lines", {"active": True}),
        ("MAX_CONTENT_LENGTH", "int", 1024 * 1024, "largest request body in bytes (413 beyond, naming the "
         "limit; bulk requests have `MAX_BULK_CONTENT_LENGTH`, imports `MAX_IMPORT_MB`)"),
        ("MAX_BULK_CONTENT_LENGTH", "int", 16 * 1024 * 1024, "largest body of a bulk request (10,000 items) "
         "in bytes"),
    ),
    *_settings(
        "Metrics",
        ("METRICS_TOKEN", "text", None, "the bearer token Prometheus sends to `GET /metrics`; unset: `/metrics` "
         "is off (404). Production checks it as it checks the other secrets", {"example": ""}),
        ("PROMETHEUS_MULTIPROC_DIR", "text", None, "a directory every process writes its counters to, so "
         "`/metrics` adds up all gunicorn workers and the Celery processes given the same directory "
         "(compose.yaml shares a volume); gunicorn makes a fresh one when `METRICS_TOKEN` is set and this "
         "is not", {"shown": "unset → one process, or gunicorn's own", "example": ""}),
    ),
    *_settings(
        "Database",
        ("MONGO_URI", "text", None, "real MongoDB connection string; unset: the embedded in-memory store "
         "(not persisted)", {"aliases": ("MONGODB_URI",), "shown": "unset → embedded",
                             "example": "mongodb://localhost:27017/crm"}),
        ("MONGO_DB", "text", "crm", "database name when the URI names none"),
        ("MONGO_TIMEOUT_MS", "count", 3000, "how long a request waits for an unreachable MongoDB (server "
         "selection, connect) before answering 503"),
        ("MONGO_MAX_IN", "count", 1000, "longest `$in` list one query carries; longer lists are split into "
         "several queries. MongoDB takes far more; the stand-in's SQLite engine refuses about 500 values on "
         "an indexed field and slows down with the square of the length: its recipe sets 50"),
    ),
    *_settings(
        "Sessions",
        ("SESSION_SECRET", "text", None, "the app's signing secret (sessions, Authlib state, unsubscribe "
         "links unless `UNSUBSCRIBE_SECRET`); production needs 32+ random characters and an estimated 128 "
         "bits (no runs, sequences or repeats) and refuses documentation placeholders (values containing "
         f"`change-me`, `example`, `secret`, …): {SECRET_HINT}",
         {"aliases": ("SECRET_KEY",), "key": "SECRET_KEY", "shown": "unset → random per start in development",
          "example": "", "active": True}),
        ("SESSION_COOKIE_SECURE", "flag", None, "`Secure` flag on the session cookie",
         {"shown": "true when `FRONTEND_URL` is https", "example": "true"}),
        ("LOGIN_DISABLED", "flag", False, "local tinkering only: opens every data route (logs a loud "
         "warning); refused in production", {"example": "true"}),
        ("SESSION_REDIS_URL", "text", None, "where server-side sessions live; unset: the application "
         "database", {"example": "redis://localhost:6379/0"}),
        ("SESSION_IDLE_MINUTES", "positive", 60, "idle timeout of a session"),
        ("SESSION_MAX_HOURS", "positive", 12, "absolute lifetime of a session"),
    ),
    *_settings(
        "Access control",
        ("ADMIN_EMAILS", "emails", [], "comma-separated emails that become `admin` on first sign-in (they "
         "may always sign in); required in production", {"shown": "none", "example": "you@example.com"}),
        ("DEFAULT_ROLE", "lower", "viewer", "role of other new users: `viewer` or `marketer`"),
        ("ALLOWED_EMAIL_DOMAINS", "domains", [], "comma-separated Google Workspace domains allowed to sign "
         "in (the ID token's `hd` claim must name the domain: an address there is not enough)",
         {"shown": "any", "example": "example.com"}),
        ("INVITED_EMAILS", "emails", [], "comma-separated emails allowed to sign in whatever their domain",
         {"shown": "none", "example": "contractor@gmail.com"}),
        ("ALLOW_ANY_GOOGLE_ACCOUNT", "flag", False, "production refuses to start with Google sign-in open "
         "to every account unless one of the two above is set, or this says it is meant"),
        ("TRUSTED_PROXIES", "int", 0, "number of reverse proxies in front, whose `X-Forwarded-*` headers "
         "are believed"),
        ("API_KEY_CACHE_S", "float", 1.0, "how long a process remembers a key it has checked (key and owner "
         "looked up once, not on every request): a revoked key, or a disabled or demoted owner, takes "
         "effect within this many seconds in other processes, at once in the one that changed it. 0–10; 0 "
         "looks up every request"),
    ),
    *_settings(
        "Rate limits (Flask-Limiter notation, e.g. `10 per minute;100 per hour`)",
        ("RATELIMIT_ENABLED", "flag", True, "switch the limits off (e.g. behind a gateway that limits)"),
        ("RATELIMIT_STORAGE_URI", "text", "memory://", "rate-limit counters; use Redis (`redis://...`) "
         "with several workers"),
        ("RATELIMIT_LOGIN", "text", "20 per minute", "sign-in attempts per IP"),
        ("RATELIMIT_WRITE", "text", "120 per minute", "writes per user (sessions and API keys together); a "
         "bulk request counts one per 1,000 items"),
        ("RATELIMIT_WRITE_IP", "text", "600 per minute", "writes per IP"),
        ("RATELIMIT_RECEIPTS_REFUSED", "text", "30 per minute", "receipt webhook requests refused for their "
         "signature (401), per IP: past it every request from that address is a 429 until the window ends "
         "(a vendor signing correctly never counts)"),
        ("RATELIMIT_AI", "text", "30 per minute", "assistant requests per user (sessions and API keys "
         "together)"),
        ("RATELIMIT_KEY_PREFIX", "text", "crm", "prefix of the limiter's keys in its storage"),
    ),
    *_settings(
        "Google sign-in (OpenID Connect)",
        ("GOOGLE_CLIENT_ID", "text", None, "Google OAuth client id; unset: sign-in answers 503",
         {"example": "", "active": True}),
        ("GOOGLE_CLIENT_SECRET", "text", None, "Google OAuth client secret", {"example": "", "active": True}),
        ("GOOGLE_DISCOVERY_URL", "text", GOOGLE_DISCOVERY_DEFAULT, "OpenID Connect discovery document",
         {"shown": "Google's"}),
        ("GOOGLE_REDIRECT_URI", "text", None, "where Google sends the browser back; production with Google "
         "configured refuses to start without it or `PUBLIC_URL` (never taken from the request's `Host`)",
         {"shown": "`$PUBLIC_URL/api/auth/google/callback`",
          "example": "https://crm.example.com/api/auth/google/callback"}),
        ("PUBLIC_URL", "text", None, "the server's public base URL (sign-in redirect, unsubscribe links)",
         {"shown": "unset (development: this request's host)", "example": "https://crm.example.com"}),
    ),
    *_settings(
        "Frontend",
        ("FRONTEND_URL", "url", "http://localhost:5000", "where sign-in ends (`${FRONTEND_URL}/home`); a "
         "CORS origin", {"active": True}),
        ("FRONTEND_DIR", "text", None, "serve the React build (its `index.html` and `static/`) from this "
         "folder", {"example": "/path/to/frontend/build"}),
        ("CORS_ORIGINS", "list", [], "more origins allowed to call with credentials, comma-separated (`*` "
         "is ignored)", {"shown": "none", "example": "https://admin.example.com,http://localhost:3000"}),
    ),
    *_settings(
        "AI assistant",
        ("GEMINI_API_KEY", "text", None, "the assistant's Gemini key; unset: the assistant answers 503",
         {"example": ""}),
        ("GEMINI_MODEL", "text", "gemini-2.5-flash", "the Gemini model"),
        ("GEMINI_API_ENDPOINT", "text", None, "another base URL for the SDK (`http://...` or "
         "`https://...`: a proxy, a stand-in)", {"shown": "Google's", "example": "https://generativelanguage.googleapis.com"}),
        ("GEMINI_TIMEOUT_S", "positive", 20, "seconds to wait for an answer"),
        ("GEMINI_RETRIES", "int", 2, "retries of a failed call"),
        ("GEMINI_RETRY_BACKOFF_S", "float", 1.0, "first wait between retries (doubling)"),
        ("GEMINI_RETRY_AFTER_S", "int", 30, "`Retry-After` when Gemini is unavailable"),
    ),
    *_settings(
        "Campaign engine",
        ("CELERY_BROKER_URL", "text", None, "a broker makes a separate worker run jobs (`celery -A worker "
         "worker` / `beat`); needs `MONGO_URI`", {"shown": "unset → tasks run in-process",
                                                   "example": "amqp://guest:guest@localhost:5672//"}),
        ("CELERY_QUEUE", "text", "crm", "the task queue's name"),
        ("CELERY_IMPORT_QUEUE", "text", None, "the queue CSV imports go to, so a worker of their own runs them "
         "and campaigns never wait behind a large file (`celery -A worker worker -Q crm-imports`; one worker "
         "can take both with `-Q crm,crm-imports`)", {"shown": "`<CELERY_QUEUE>-imports`", "example": ""}),
        ("DISPATCH_BATCH_SIZE", "int", 2000, "recipients per batch (a paced campaign's batches are smaller: "
         "each takes at most half of `DISPATCH_CLAIM_LEASE_S` at its pace); a batch costs about 15 database "
         "round trips, so 2,000 keeps dispatch under 0.01 per recipient"),
        ("DISPATCH_CLAIM_LEASE_S", "positive", 300, "how long a worker's claim on a batch lasts"),
        ("ENGINE_THREADS", "count", 4, "without a broker: the background threads that plan, send and "
         "import (never a request's thread)"),
        ("IMPORT_THREADS", "count", 1, "without a broker: the background threads that run CSV imports, apart "
         "from ENGINE_THREADS so a large file never delays a campaign"),
        ("ENGINE_CONTROL_CHECK_S", "positive", 0.25, "how often a sending batch re-reads its campaign's "
         "state (pause/cancel take effect within this or one message)"),
        ("ENGINE_FLUSH_S", "positive", 1, "how often a sending batch records its outcomes"),
        ("ENGINE_JOB_RETRIES", "int", 5, "retries of a job (planning, sending, importing) that met a "
         "temporary database or broker error, with backoff; past them, or at any other error, the "
         "campaign or import ends `failed` with `lastError`"),
        ("ENGINE_JOB_RETRY_BASE_S", "positive", 1, "first wait before such a retry (doubling, at most a "
         "minute)"),
        ("SCHEDULER_ENABLED", "flag", True, "the in-process scheduler (no broker)"),
        ("SCHEDULER_INTERVAL_S", "positive", 15, "the scheduler's and beat's period"),
        ("DEFAULT_TIMEZONE", "text", "UTC", "the workspace's time zone (IANA name): a campaign sent at a local time "
         "reaches customers without a `timezone` at that time here"),
        ("QUIET_HOURS", "text", "", "`HH:MM-HH:MM` (e.g. `21:00-08:00`): no campaign message is sent while it is "
         "within these hours in the recipient's own zone; it waits for the end of them (empty: off)",
         {"example": "21:00-08:00"}),
        ("FREQUENCY_CAP", "text", "", "`N/Hh` (e.g. `3/24h`): at most N marketing messages per customer in any H "
         "hours, campaigns and flows together (transactional flows are exempt); a message over it is not sent and "
         "counted `capped` (empty: off)", {"example": "3/24h"}),
        ("FLOW_BATCH", "count", 1000, "flow enrolments a worker claims at a time (what it did is recorded every "
         "`ENGINE_FLUSH_S` within a batch)"),
        ("FLOW_SWEEP_INTERVAL_S", "positive", 300, "seconds between sweeps that enter customers into segment, "
         "win-back and anniversary flows (and catch up on missed entries)"),
        ("FLOW_CONVERSION_DAYS", "positive", 5, "an order within this many days of entering a flow converts the "
         "entry (the flow's converted count and revenue)"),
        ("RFM_INTERVAL_H", "positive", 24, "hours between full RFM passes (scores by quintiles, segments); "
         "orders rescore their customers at once in between"),
        ("MESSAGE_ID_DOMAIN", "text", "crm.local", "domain of the `Message-ID`s the engine assigns",
         {"example": "crm.example.com"}),
        ("VENDOR", "lower", "simulated", "`simulated` or `smtp`"),
        ("VENDOR_SUCCESS_RATE", "float", 0.9, "the simulated vendor's delivery rate (0–1)"),
        ("VENDOR_SEED", "text", "crm", "the simulated vendor's seed"),
        ("VENDOR_HARD_BOUNCE_RATE", "float", 0.0, "share of messages the simulated vendor hard-bounces (0–1; "
         "reported as FAILED with `bounce: hard`)"),
        ("VENDOR_SOFT_BOUNCE_RATE", "float", 0.0, "share it soft-bounces (0–1; `bounce: soft`)"),
        ("VENDOR_COMPLAINT_RATE", "float", 0.0, "share of delivered messages it reports a spam complaint for "
         "(0–1)"),
        ("SOFT_BOUNCE_LIMIT", "count", 3, "soft bounces of one address within 30 days that suppress it (a hard "
         "bounce or a complaint suppresses at once)"),
        ("VENDOR_MAX_ATTEMPTS", "count", 5, "tries per recipient for temporary vendor errors (unreachable, "
         "timeout, SMTP 4xx)"),
        ("VENDOR_RETRY_BASE_S", "positive", 1, "first backoff between those tries (doubling)"),
        ("VENDOR_RETRY_MAX_S", "positive", 60, "longest backoff"),
        ("VENDOR_RECEIPTS", "flag", True, "whether the simulated vendor posts receipts"),
        ("VENDOR_RECEIPT_URL", "text", None, "where it posts them", {
            "shown": "`http://127.0.0.1:$PORT/api/delivery-receipts`",
            "example": "http://127.0.0.1:5000/api/delivery-receipts"}),
        ("VENDOR_RECEIPT_DELAY_S", "positive", 1, "how soon it posts them"),
        ("VENDOR_RECEIPT_BATCH", "count", 500, "receipts per webhook request (the stand-in's SQLite engine "
         "takes about 0.15 s per document it updates: its recipe uses 100, so a request stays well within "
         "gunicorn's 30 s)"),
        ("VENDOR_RECEIPT_RETRY_MAX_S", "positive", 600, "longest wait between its attempts to post receipts "
         "the webhook did not accept (doubling from `VENDOR_RECEIPT_DELAY_S`)"),
        ("VENDOR_RECEIPT_GIVE_UP_H", "positive", 72, "how long it keeps trying before it drops a receipt "
         "(as real vendors retry for days)"),
        ("VENDOR_WEBHOOK_SECRET", "text", None, "signs delivery receipts; set it in production (checked as "
         "`SESSION_SECRET` is; unset, the receipt webhook answers 503) and in every worker", {"shown": "random per process in development", "example": ""}),
        ("SMTP_HOST", "text", "localhost", "the SMTP vendor's server", {"example": "smtp.example.com"}),
        ("SMTP_PORT", "int", 25, "its port", {"example": "587"}),
        ("SMTP_FROM", "text", "crm@localhost", "the sender address", {"example": "news@example.com"}),
        ("SMTP_USERNAME", "text", None, "SMTP login", {"example": ""}),
        ("SMTP_PASSWORD", "text", None, "SMTP password", {"example": ""}),
        ("SMTP_STARTTLS", "flag", False, "use STARTTLS", {"example": "true"}),
        ("SMTP_TIMEOUT_S", "positive", 30, "seconds per SMTP operation"),
    ),
    *_settings(
        "Data in and out",
        ("MAX_IMPORT_MB", "positive", 50, "largest CSV file an import takes (413 beyond; spooled to disk "
         "and kept in GridFS, never whole in memory)"),
        ("IMPORT_CHUNK_ROWS", "count", 1000, "rows written per chunk (the unit a resumed import restarts "
         "from)"),
        ("IMPORT_MAX_LINES", "count", 1_000_000, "most lines a CSV file may have (a row quoted over several "
         "lines counts each); refused at upload (400) beyond it"),
        ("IMPORT_MAX_LINE_KB", "count", 64, "longest line a CSV file may have, in KiB; refused at upload beyond it "
         "(a 50 MB file of one line would otherwise be read whole)"),
        ("IMPORT_MAX_COLUMNS", "count", 50, "most columns a CSV header may have"),
        ("IMPORT_MAX_ROW_ERRORS", "count", 1000, "row errors kept per job (the first ones by line); beyond, they "
         "are counted in `counts.failed` but not stored, and the job says `rowErrorsDropped`"),
        ("IMPORT_FAILED_UPLOAD_HOURS", "int", 0, "how long a failed import keeps its uploaded file (personal "
         "data) for inspection; 0 deletes it when the job fails. Finished jobs never keep theirs"),
        ("IMPORT_LEASE_S", "positive", 300, "how long a running import may go without a heartbeat before "
         "another worker takes it over"),
        ("UNSUBSCRIBE_SECRET", "text", None, "signs the one-click unsubscribe links and (a key derived from "
         "it) the open and click tracking links in messages; set one that outlives session-secret "
         "rotations, or old links stop working; production checks it as it checks `SESSION_SECRET`",
         {"shown": "unset → the session secret", "example": ""}),
    ),
    *_settings(
        "Tracking, A/B tests and attribution",
        ("TRACKING_BOT_DELAY_S", "positive", 5, "an open or click this soon after the hand-off is a "
         "suspected bot (`too_soon`): scanners act on arrival"),
        ("TRACKING_ALL_LINKS_S", "positive", 1, "a recipient clicking every link of a message (two or more) "
         "within this many seconds is a suspected bot (`all_links`)"),
        ("TRACKING_PROXY_NETWORKS", "text", "17.0.0.0/8", "comma-separated networks whose opens are mail "
         "privacy proxies (`privacy_proxy`; Apple's Mail Privacy Protection fetches from Apple's 17.0.0.0/8)"),
        ("TRACKING_EVENT_LOG", "count", 100, "events kept in a delivery's log (the most recent; its counts "
         "stay exact beyond it)"),
        ("AB_MIN_SAMPLE", "count", 100, "recipients every A/B variant needs before the rule may pick a winner"),
        ("AB_CONFIDENCE", "float", 0.95, "the probability to be best a variant needs to win by the rule (0.5–1)"),
        ("ATTRIBUTION_MAX_DAYS", "positive", 90, "the longest attribution window a campaign may set "
         "(`attributionDays`, default 5)"),
    ),
]

# Set by the application itself, not the environment.
FIXED = {
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "JSON_SORT_KEYS": False,
}


def _read(env, setting):
    """The value of one setting from the environment (its default when unset or empty)."""
    raw = _env(env, setting.name, *setting.aliases)
    kind = setting.kind
    if kind in ("positive", "count"):
        value = _positive(setting.name, raw, setting.default)
        return int(value) if kind == "count" else value
    if raw is None:
        return list(setting.default) if isinstance(setting.default, list) else setting.default
    if kind == "flag":
        return _flag(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "list":
        return _csv(raw)
    if kind == "emails":
        return [item.lower() for item in _csv(raw)]
    if kind == "domains":
        return [item.lower().lstrip("@") for item in _csv(raw)]
    return {"lower": str.lower, "upper": str.upper, "url": lambda v: v.rstrip("/")}.get(kind, str)(raw)


def from_env(environ=None):
    """Build the Flask config mapping from environment variables (:data:`SETTINGS`)."""
    env = os.environ if environ is None else environ
    config = {setting.key or setting.name: _read(env, setting) for setting in SETTINGS}
    if config["SESSION_COOKIE_SECURE"] is None:
        config["SESSION_COOKIE_SECURE"] = config["FRONTEND_URL"].startswith("https://")
    config["REMEMBER_COOKIE_SECURE"] = config["SESSION_COOKIE_SECURE"]
    config["APP_ENV_CHOSEN"] = _env(env, "APP_ENV", "FLASK_ENV") is not None  # development asked for, or fallen into
    return {**config, **FIXED}


def _shown_default(setting):
    if setting.shown is not None:
        return setting.shown
    if setting.default is None:
        return "unset"
    if isinstance(setting.default, bool):
        return f"`{str(setting.default).lower()}`"
    return f"`{setting.default}`"


def readme_table():
    """The README's configuration table, generated from :data:`SETTINGS`."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        name = f"`{setting.name}`" + "".join(f" (or `{alias}`)" for alias in setting.aliases)
        lines.append(f"| {name} | {_shown_default(setting)} | {setting.help} |")
    return "\n".join(lines) + "\n"


def _example(setting):
    if setting.example is not None:
        return setting.example
    if isinstance(setting.default, bool):
        return str(setting.default).lower()
    return "" if setting.default is None else str(setting.default)


def env_example():
    """``.env.example``, generated from :data:`SETTINGS`: every variable with its meaning."""
    lines = ["# Copy to .env (scripts/serve.sh loads it) and fill in what you need. Nothing here is required",
             "# for a local run: without MONGO_URI the server uses an embedded in-memory database.",
             "# Generated from config.SETTINGS by `python config.py --write` (tests/test_config_docs.py",
             "# checks it): edit the table, not this file."]
    group = None
    for setting in SETTINGS:
        if setting.group != group:
            group = setting.group
            lines += ["", f"# --- {group} " + "-" * max(3, 96 - len(group))]
        text = setting.help.replace("`", "")
        if setting.aliases:
            text += f" (also read as {', '.join(setting.aliases)})"
        lines += textwrap.wrap(text, 98, initial_indent="# ", subsequent_indent="# ")
        lines.append(("" if setting.active else "# ") + f"{setting.name}={_example(setting)}")
    return "\n".join(lines) + "\n"


README_START, README_END = "<!-- config table: generated from config.SETTINGS -->", "<!-- end of config table -->"


def write_docs(root=None):
    """Rewrite ``.env.example`` and the README's table from :data:`SETTINGS`."""
    root = root or os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(root, ".env.example"), "w") as out:
        out.write(env_example())
    path = os.path.join(root, "README.md")
    with open(path) as handle:
        readme = handle.read()
    before, rest = readme.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    with open(path, "w") as out:
        out.write(before + README_START + "\n" + readme_table() + README_END + after)


def _check_networks(value):
    for item in (value or "").split(","):
        try:
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)
        except ValueError as exc:
            raise ConfigError(f"TRACKING_PROXY_NETWORKS: {exc}") from exc


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
    for rate in ("VENDOR_SUCCESS_RATE", "VENDOR_HARD_BOUNCE_RATE", "VENDOR_SOFT_BOUNCE_RATE", "VENDOR_COMPLAINT_RATE"):
        if not 0 <= config.get(rate, 0) <= 1:
            raise ConfigError(f"{rate} must be between 0 and 1")
    if config.get("VENDOR_HARD_BOUNCE_RATE", 0) + config.get("VENDOR_SOFT_BOUNCE_RATE", 0) > 1:
        raise ConfigError("VENDOR_HARD_BOUNCE_RATE + VENDOR_SOFT_BOUNCE_RATE must be at most 1")
    _check_networks(config.get("TRACKING_PROXY_NETWORKS"))
    if not 0 <= config.get("API_KEY_CACHE_S", 1.0) <= 10:
        raise ConfigError("API_KEY_CACHE_S must be between 0 and 10 (seconds a revoked key may still work)")
    try:
        zoneinfo.ZoneInfo(config.get("DEFAULT_TIMEZONE") or "UTC")
    except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
        raise ConfigError("DEFAULT_TIMEZONE must be an IANA time zone name, "
                          f"not {config.get('DEFAULT_TIMEZONE')!r}") from exc
    quiet = config.get("QUIET_HOURS") or ""
    if quiet and (not QUIET_HOURS_RE.match(quiet) or quiet[:5] == quiet[6:]):
        raise ConfigError(f"QUIET_HOURS must be HH:MM-HH:MM with two different times (e.g. 21:00-08:00), not {quiet!r}")
    if (config.get("FREQUENCY_CAP") or "") and not FREQUENCY_CAP_RE.match(config["FREQUENCY_CAP"]):
        raise ConfigError(f"FREQUENCY_CAP must be N/Hh (e.g. 3/24h), not {config['FREQUENCY_CAP']!r}")
    if not 0.5 <= config.get("AB_CONFIDENCE", 0.95) < 1:
        raise ConfigError("AB_CONFIDENCE must be at least 0.5 and below 1")
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
    elif not config.get("APP_ENV_CHOSEN") and google_configured(config):
        raise ConfigError(UNCHOSEN_ENV.format(why="Google sign-in is configured"))
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


UNCHOSEN_ENV = ("Refusing to start: APP_ENV is not set and {why}, so development mode (relaxed checks, "
                "insecure cookies, a development admin key) would be fallen into rather than chosen. Set "
                "APP_ENV=production, or APP_ENV=development if a development server is really meant.")


def google_configured(config):
    return bool(config.get("GOOGLE_CLIENT_ID") and config.get("GOOGLE_CLIENT_SECRET"))


def secret_problem(name, value, own=True):
    """Why secret ``value`` (setting ``name``) is unfit for production, or None: it looks copied from
    documentation (a placeholder word), or, for the app's own secrets, it is short or guessable."""
    lowered = value.lower()
    word = next((word for word in PLACEHOLDER_WORDS if word in lowered), None)
    if word:
        return f"{name} is a placeholder (it contains {word!r}); make one with {MAKE_SECRET}"
    if own and (len(value) < MIN_SECRET_LENGTH or secret_bits(value) < MIN_SECRET_BITS):
        return (f"{name} is weak (use {MIN_SECRET_LENGTH}+ random characters, at least {MIN_SECRET_BITS} bits: "
                f"{MAKE_SECRET})")
    return None


def is_production(config):
    """Only ``development`` and ``testing`` relax anything; any other value is production."""
    return config.get("APP_ENV") not in RELAXED_ENVS


def production_problems(config):
    """Why this config is unsafe for production (empty when it is fine)."""
    problems = []
    if not config.get("SECRET_KEY"):
        problems.append("SESSION_SECRET (or SECRET_KEY) is not set")
    secrets_set = [(name, config.get(key), True) for key, name in OWN_SECRETS]
    secrets_set += [(name, config.get(name), False) for name in OTHER_SECRETS]
    problems += [problem for name, value, own in secrets_set
                 if value and (problem := secret_problem(name, value, own))]
    if config.get("FIRST_USER_ADMIN"):
        problems.append("FIRST_USER_ADMIN is set (production makes admins only from ADMIN_EMAILS)")
    if not config.get("SESSION_COOKIE_SECURE"):
        problems.append("SESSION_COOKIE_SECURE is off (serve over https and set FRONTEND_URL to https)")
    if config.get("LOGIN_DISABLED"):
        problems.append("LOGIN_DISABLED is set")
    google = google_configured(config)
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


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python config.py --write   (regenerates .env.example and the README's table)")
    write_docs()
