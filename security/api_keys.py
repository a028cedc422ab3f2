"""API keys: generation, and authenticating a request that carries one."""
import secrets
import threading
from datetime import datetime, timedelta

from flask import current_app, g, request

from models import ApiKey, User
from models.api_key import hash_key
from models.base import utcnow
from models.roles import ADMIN
from security.allow_list import may_sign_in

KEY_PREFIX = "crm_"
SHOWN_PREFIX_LENGTH = 12
LAST_USED_RESOLUTION = timedelta(minutes=1)
DEV_KEY_EXTENSION = "dev_api_key"
# Set by gunicorn's master (gunicorn.conf.py) for its workers: the SHA-256 of the one development key
# it minted and printed, so every worker, and every worker restarted later, accepts that same key.
DEV_KEY_HASH_ENV = "CRM_DEV_ADMIN_KEY_SHA256"
DEV_ADMIN_GOOGLE_ID = "dev-admin@localhost"


def new_key():
    """A fresh key (shown once) and the prefix kept to recognise it in listings."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:SHOWN_PREFIX_LENGTH]


def presented_key():
    """The key in ``Authorization: Bearer`` or ``X-API-Key``, if any."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def _dev_admin():
    """The local development admin, created on demand (so it survives a wiped database)."""
    return User.objects(google_id=DEV_ADMIN_GOOGLE_ID).modify(
        upsert=True, new=True,
        set__role=ADMIN, set__disabled=False,
        set_on_insert__display_name="Development admin",
        set_on_insert__email=DEV_ADMIN_GOOGLE_ID,
        set_on_insert__created_at=utcnow(),
    )


def _dev_key_user(key_hash):
    dev_hash = current_app.extensions.get(DEV_KEY_EXTENSION)
    if dev_hash and secrets.compare_digest(dev_hash, key_hash):
        return _dev_admin(), ADMIN
    return None


class _Recent:
    """Keys this process authenticated within the last ``API_KEY_CACHE_S`` (1 s): a client sending many
    requests costs the store one look-up of key and owner a second, not three operations a request.
    What changes a key's answer is seen within that second in every process, and at once in the one
    that made the change (:func:`forget`): a revoked key, a disabled or demoted owner. The sign-in
    allow-list is read from the config on every request, cached or not. Bounded: past ``LIMIT`` keys it
    starts afresh."""

    LIMIT = 10_000

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}  # key hash → (valid until, (user, role, key id, expiry))

    def get(self, key_hash, now):
        with self._lock:
            entry = self._entries.get(key_hash)
        return entry[1] if entry and entry[0] > now else None

    def put(self, key_hash, until, result):
        with self._lock:
            if len(self._entries) >= self.LIMIT:
                self._entries.clear()
            self._entries[key_hash] = (until, result)

    def clear(self):
        with self._lock:
            self._entries.clear()


RECENT_EXTENSION = "recent_api_keys"


def _recent():
    """This app's remembered keys (each app its own: two apps in a process may use two databases)."""
    return current_app.extensions.setdefault(RECENT_EXTENSION, _Recent())


def forget():
    """Drop this process's remembered keys: called where a key is revoked or a user changed."""
    _recent().clear()


def authenticate(raw):
    """``(user, role)`` for a usable key of an enabled user, else None."""
    key_hash = hash_key(raw)
    dev = _dev_key_user(key_hash)
    if dev:
        return dev
    now, recent = utcnow(), _recent()
    found = recent.get(key_hash, now)
    if found is None:
        found = _look_up(key_hash, now)
        if found is None:
            return None
        seconds = current_app.config["API_KEY_CACHE_S"]
        if seconds:
            expires = found[3]  # never remembered past the key's own expiry
            recent.put(key_hash, min(now + timedelta(seconds=seconds), expires or datetime.max), found)
    user, role, key_id, _ = found
    if not may_sign_in(user.email, current_app.config):
        return None  # taken off the sign-in lists since
    g.api_key_id = key_id
    return user, role


def _look_up(key_hash, now):
    """``(user, role, key id, expiry)`` from the store, recording the key's use (at most once a minute)."""
    key = ApiKey.objects(key_hash=key_hash).first()
    if key is None or not key.usable():
        return None
    user = User.objects(pk=key.user_id).first()
    if user is None or user.disabled:
        return None
    # Record use, at most once a minute, without a read-modify-write race.
    ApiKey.objects(pk=key.pk, __raw__={"$or": [
        {"lastUsedAt": None}, {"lastUsedAt": {"$lt": now - LAST_USED_RESOLUTION}}
    ]}).update_one(set__last_used_at=now)
    return user, key.role, key.pk, key.expires_at


def load_user_from_request(req):
    """Flask-Login ``request_loader``: the key's owner, remembering the key's role for the policy."""
    raw = presented_key()
    if not raw:
        return None
    result = authenticate(raw)
    if result is None:
        return None
    user, role = result
    g.auth_via = "api_key"
    g.api_key_role = role
    return user


def issue_dev_admin_key(app, known=None):
    """Development only: a key for a local admin, valid until the server stops; logged once.

    Under gunicorn the master minted it before forking (:func:`mint_dev_admin_key`) and hands its
    hash (``known``) to every worker through the environment (``wsgi.py`` reads it): one key for the
    whole server, however many workers and restarts. Elsewhere (``flask run``, a test) this process
    mints and logs its own."""
    if known:
        app.extensions[DEV_KEY_EXTENSION] = known
        return None
    key = mint_dev_admin_key(app.logger.warning, app.config["PORT"])
    app.extensions[DEV_KEY_EXTENSION] = hash_key(key)
    return key


def mint_dev_admin_key(warn, port):
    """A new development admin key, announced once through ``warn``; returns it."""
    key, _ = new_key()
    warn("Google sign-in is not configured: development admin API key (valid until this server "
         "stops): %s  e.g. curl -H 'Authorization: Bearer %s' localhost:%s/api/auth/me", key, key, port)
    return key
