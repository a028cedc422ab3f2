"""Connect MongoEngine to MongoDB, or to the embedded in-memory store when no URI is set."""
import logging
import threading
import time

import mongoengine
from flask import current_app, has_app_context
from pymongo.errors import ConnectionFailure

log = logging.getLogger(__name__)
INDEX_RETRY_S = 5
DEFAULT_MAX_IN = 1000


def in_chunks(values):
    """``values`` (deduplicated, in order) as lists of at most ``MONGO_MAX_IN``: the longest ``$in`` a
    query carries, so a store's expression limits are respected by design (the stand-in's SQLite
    engine refuses 1,000 values) while a batch still costs a bounded number of round trips."""
    size = current_app.config["MONGO_MAX_IN"] if has_app_context() else DEFAULT_MAX_IN
    values = list(dict.fromkeys(values))
    return [values[start:start + size] for start in range(0, len(values), size)]


def customer_ids(pks):
    """A filter on a customer id for ``pks``: the id itself when there is one (an order's customer);
    their ``_id`` range when they are few enough to be a run (a bulk write's customers, one index
    range, as the campaign sender reads a batch: MongoDB walks the range; the stand-in matches a
    ``$in`` by scanning once per value), else ``$in``. The caller keeps only the ids it asked for."""
    from models import Customer

    pks = list(pks)
    if len(pks) == 1:
        return pks[0]
    if len(pks) > 1 and Customer._get_collection().count_documents(
            {"_id": {"$gte": min(pks), "$lte": max(pks)}}, limit=4 * len(pks) + 1) <= 4 * len(pks):
        return {"$gte": min(pks), "$lte": max(pks)}
    return {"$in": pks}


def init_db(app):
    """Open the default MongoEngine connection described by the app config.

    With ``MONGO_URI`` the database named in the URI is used (else ``MONGO_DB``), and
    ``MONGO_TIMEOUT_MS`` bounds how long a request waits for an unreachable server (server
    selection and connect), so an outage answers 503 in seconds instead of hanging. Connecting is
    lazy: the process starts while the database is down. Without a URI the embedded mongomock store
    is used: it lives inside this process and keeps nothing on disk.
    """
    mongoengine.disconnect()
    uri = app.config.get("MONGO_URI")
    if uri:
        timeout_ms = app.config["MONGO_TIMEOUT_MS"]
        mongoengine.connect(
            db=app.config["MONGO_DB"], host=uri, uuidRepresentation="standard",
            serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
        )
    else:
        import mongomock

        from models import embedded

        embedded.patch_mongomock()
        mongoengine.connect(
            app.config["MONGO_DB"],
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )
        app.logger.warning(
            "MONGO_URI is not set: using the embedded in-memory database; data is NOT persisted "
            "and lives only inside this process"
        )
    app.extensions["mongo_db_name"] = mongoengine.get_db().name
    app.extensions["mongo_embedded"] = not uri


def ensure_indexes():
    """Create every index the documents declare (idempotent: existing ones are left alone)."""
    from models import ALL_DOCUMENTS

    for document in ALL_DOCUMENTS:
        document.ensure_indexes()


def ensure_indexes_when_reachable(app, retry_s=INDEX_RETRY_S, then=None):
    """Create the indexes in a thread that keeps trying while the database is down (then call
    ``then()``, in the app context, once they are there).

    MongoEngine creates a collection's indexes only on its first use in a process, and not again if
    that first use failed; doing it here means an outage at start-up leaves no collection unindexed,
    and start-up never waits for the database.
    """
    def keep_trying():
        announced = False
        while True:
            try:
                with app.app_context():
                    ensure_indexes()
                    if then:
                        then()
                if announced:
                    log.warning("database reachable again: indexes ensured")
                return
            except ConnectionFailure as exc:
                if not announced:
                    log.warning("database unreachable (%s): requests answer 503 until it returns; "
                                "indexes will be created then", type(exc).__name__)
                    announced = True
                time.sleep(retry_s)

    thread = threading.Thread(target=keep_trying, name="ensure-indexes", daemon=True)
    thread.start()
    return thread
