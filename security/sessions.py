"""Server-side sessions (Flask-Session): revocable, rotated at login, idle and absolute timeouts.

The cookie holds only a random session id. The data lives in Redis when ``SESSION_REDIS_URL`` is set,
else in the application database (``sessions`` collection), so logging out deletes it and a replayed
cookie finds nothing.
"""
import calendar
import time
from datetime import timedelta

import mongoengine
from flask import current_app, g, session
from flask_login import current_user, login_user, logout_user
from flask_session.base import ServerSideSessionInterface
from flask_session.mongodb import MongoDBSessionInterface
from flask_session.redis import RedisSessionInterface
from pymongo.errors import ConnectionFailure

CREATED = "_crm_created"
SEEN = "_crm_seen"
SEEN_RESOLUTION_S = 60  # refresh "last seen" at most once a minute: no store write per request
OPTIONS = {
    "key_prefix": "crm:session:",
    "use_signer": False,
    "permanent": True,
    "sid_length": 32,
    "serialization_format": "msgpack",
}


SESSIONLESS_PATHS = ("/api/t/",)  # links in mail (pixel, clicks): nobody's session is read or written


class SessionlessPaths:
    """A session interface that opens no session for :data:`SESSIONLESS_PATHS` (Flask's null
    session: reads see it empty, nothing is saved): a pixel fetched by a signed-in browser neither
    loads nor refreshes that person's session."""

    def open_session(self, app, request):
        if request.path.startswith(SESSIONLESS_PATHS):
            return self.make_null_session(app)
        return super().open_session(app, request)


class AppRedisSessionInterface(SessionlessPaths, RedisSessionInterface):
    """Flask-Session's Redis store, without sessions on :data:`SESSIONLESS_PATHS`."""


class AppDatabaseSessionInterface(SessionlessPaths, MongoDBSessionInterface):
    """Flask-Session's MongoDB store on a collection of the app's own connection.

    Flask-Session insists on a ``pymongo.MongoClient`` (and otherwise connects to localhost), which
    the embedded mongomock client is not; the storage methods are Flask-Session's own.
    """

    def __init__(self, app, collection, **options):  # noqa: D107 - deliberately not calling super
        self.client = None
        self.store = collection
        self.use_deprecated_method = False
        self._ttl_index_ready = False
        ServerSideSessionInterface.__init__(self, app, **options)

    def open_session(self, app, request):
        """Load the session; with the database down, defer the error into the request.

        Flask opens the session before its error handlers apply, where a failure would be logged as
        an unhandled exception; raised again by :func:`raise_store_error` it is the API's 503.
        """
        try:
            return super().open_session(app, request)
        except ConnectionFailure as exc:
            g.session_store_error = exc
            return self.make_null_session(app)

    def _upsert_session(self, session_lifetime, session, store_id):
        # The TTL index is made on first write, not at start: a database that is down at start
        # then shows in /readyz instead of preventing the process from starting.
        if not self._ttl_index_ready:
            self.store.create_index("expiration", expireAfterSeconds=0)
            self.store.create_index("id", unique=True)  # every request looks its session up by id
            self._ttl_index_ready = True
        super()._upsert_session(session_lifetime, session, store_id)


def init_app(app):
    """Choose the session store and install the timeout check."""
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    url = app.config.get("SESSION_REDIS_URL")
    if url:
        import redis

        app.session_interface = AppRedisSessionInterface(app, client=redis.Redis.from_url(url), **OPTIONS)
    else:
        collection = mongoengine.get_db()["sessions"]
        app.session_interface = AppDatabaseSessionInterface(app, collection, **OPTIONS)
    app.before_request(raise_store_error)
    app.before_request(enforce_timeouts)


def raise_store_error():
    """The session store was unreachable when the session was opened: answer as for any outage."""
    error = g.pop("session_store_error", None)
    if error is not None:
        raise error


def start_session(user):
    """Sign ``user`` in on a brand-new session id (no fixation), stamping its start."""
    session.clear()
    login_user(user)
    now = time.time()
    session[CREATED] = now
    session[SEEN] = now
    current_app.session_interface.regenerate(session)


def end_session():
    """Sign out and delete the stored session."""
    logout_user()
    session.clear()


def _started_before_revocation(created):
    """True when the session's user has had every session ended since it started."""
    valid_after = getattr(current_user, "sessions_valid_after", None)
    return valid_after is not None and created < calendar.timegm(valid_after.utctimetuple()) + (
        valid_after.microsecond / 1e6)


def enforce_timeouts():
    """End signed-in sessions idle for SESSION_IDLE_MINUTES, older than SESSION_MAX_HOURS, or
    started before their user's sessions were all ended (disabling does that)."""
    if "_user_id" not in session:
        return
    now = time.time()
    idle = current_app.config["SESSION_IDLE_MINUTES"] * 60
    absolute = current_app.config["SESSION_MAX_HOURS"] * 3600
    created, seen = session.get(CREATED, 0), session.get(SEEN, 0)
    if now - created > absolute or now - seen > idle or _started_before_revocation(created):
        end_session()
        g.session_expired = True
    elif now - seen > SEEN_RESOLUTION_S:
        session[SEEN] = now
