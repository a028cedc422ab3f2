"""Connect MongoEngine to MongoDB, or to the embedded in-memory store when no URI is set."""
import functools
import logging
import threading
import time

import mongoengine
from pymongo.errors import ConnectionFailure

log = logging.getLogger(__name__)
INDEX_RETRY_S = 5
# The embedded store's one lock: mongomock updates documents in place and copies them without a lock,
# so a web thread and an engine thread meeting on one collection raised "dictionary changed size
# during iteration". Every call into the store holds it (bench/RESULTS.md: its cost).
EMBEDDED_LOCK = threading.RLock()
LOCKED_METHODS = {
    "collection.Collection": (
        "insert_one", "insert_many", "update_one", "update_many", "replace_one", "find_one",
        "find_one_and_delete", "find_one_and_replace", "find_one_and_update", "delete_one", "delete_many",
        "count_documents", "estimated_document_count", "drop", "create_index", "create_indexes",
        "drop_index", "drop_indexes", "list_indexes", "index_information", "distinct", "aggregate",
        "rename", "bulk_write"),
    "collection.Cursor": ("_compute_results", "distinct"),
    "database.Database": ("list_collection_names", "list_collections", "drop_collection",
                          "create_collection", "rename_collection", "command"),
    "mongo_client.MongoClient": ("drop_database", "list_database_names"),
}


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

        _patch_mongomock_bulk_writes()
        _patch_mongomock_thread_safety()
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


def _patch_mongomock_bulk_writes():
    """Two fixes to mongomock 4.3's bulk writes, so the embedded store answers as MongoDB does:
    pymongo ≥ 4.11 hands ``UpdateOne``'s ``sort`` (None unless given) to the bulk builder, which does
    not know it (dropped when unset: the project never sorts a bulk update); and each ``upserted``
    entry's ``index`` must be the operation's position, not the count of upserts so far."""
    from mongomock.collection import BulkOperationBuilder

    original = BulkOperationBuilder.add_update
    if getattr(original, "accepts_sort", False):
        return
    original_execute = BulkOperationBuilder.execute

    def execute(self, write_concern=None):
        upserts = []

        def numbered(index, function):
            def run():
                outcome = function()
                if outcome.get("upserted") is not None:
                    upserts.append({"index": index, "_id": outcome["upserted"]})
                return outcome

            run.__name__ = function.__name__  # execute() tells inserts from updates by name
            return run

        self.executors = [numbered(i, f) for i, f in enumerate(self.executors)]
        result = original_execute(self, write_concern)
        if isinstance(result, dict) and "upserted" in result:
            result["upserted"] = upserts
        return result

    BulkOperationBuilder.execute = execute

    def add_update(self, *args, sort=None, **kwargs):
        if sort is not None:
            raise NotImplementedError("the embedded store cannot sort a bulk update")
        return original(self, *args, **kwargs)

    add_update.accepts_sort = True
    BulkOperationBuilder.add_update = add_update


def _patch_mongomock_thread_safety():
    """Make every call into mongomock hold :data:`EMBEDDED_LOCK` (once per process)."""
    import importlib

    for where, names in LOCKED_METHODS.items():
        module, cls = where.rsplit(".", 1)
        owner = getattr(importlib.import_module(f"mongomock.{module}"), cls)
        for name in names:
            original = getattr(owner, name)
            if getattr(original, "holds_embedded_lock", False):
                continue
            setattr(owner, name, _holding_lock(original))


def _holding_lock(function):
    @functools.wraps(function)
    def locked(*args, **kwargs):
        with EMBEDDED_LOCK:
            return function(*args, **kwargs)

    locked.holds_embedded_lock = True
    return locked


def ensure_indexes():
    """Create every index the documents declare (idempotent: existing ones are left alone)."""
    from models import ALL_DOCUMENTS

    for document in ALL_DOCUMENTS:
        document.ensure_indexes()


def ensure_indexes_when_reachable(app, retry_s=INDEX_RETRY_S):
    """Create the indexes in a thread that keeps trying while the database is down.

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
