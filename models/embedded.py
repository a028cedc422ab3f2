"""The embedded store: mongomock, patched where it differs from MongoDB in ways this project meets.

:func:`patch_mongomock` (once per process, idempotent) applies four changes:

1. **One lock.** mongomock updates documents in place and copies them without a lock, so a web thread
   and an engine thread meeting on one collection raised "dictionary changed size during iteration".
   Every call into the store holds :data:`EMBEDDED_LOCK`.
2. **Unique indexes are looked up, not scanned.** mongomock checks a unique index by scanning the whole
   collection on every insert and update, and answers every query by scanning: 10,000 upserts by email
   took 108 s, each slower than the last. Here each unique index keeps a map from its key to the ids
   of the documents that had that key when they were last written (every insert and update passes
   through mongomock's uniqueness check, which keeps the map), and a query that names a document by
   ``_id`` (equality or ``$in``) or by every field of a unique index (equality, or ``$in`` for a
   one-field index) reads those candidates instead of the whole collection. While mongomock's own
   check runs on the indexes this module does not decide, the maps are neither read nor rebuilt (a map
   rebuilt then, from a document a refused update had changed in place, lost its old key). The map
   may hold stale ids (a document changed or deleted since): every
   candidate is checked with mongomock's own matcher, so the answer is exactly the scan's. A document
   whose key is not a plain value (an array, a sub-document) is always a candidate; a query or key of
   any other shape (dotted fields, partial or TTL indexes, operators) is scanned as before. Likewise a
   partial index on documents whose field is true (the records due to be folded into report tallies)
   keeps the ids of the documents written with it true, and a query asking for it true reads those.
   ``tests/test_embedded_store.py`` runs random operations on a patched and an unpatched collection
   and compares every answer.
3. **Bulk writes as pymongo ≥ 4.11 sends them**: ``UpdateOne``'s ``sort`` (None unless given) is
   accepted, and each ``upserted`` entry's ``index`` is the operation's position.
4. **An aggregation's leading ``$match`` filters as it reads.** mongomock copies every document of the
   collection before the first stage, so one campaign's failure reasons cost a copy of every campaign's
   records. A pipeline that starts with ``$match`` reads through ``find`` with that filter (the same
   matcher, and the look-ups of 2.), then runs the rest of the stages on the copies of the matches.
"""
import functools
import importlib
import threading

from bson import ObjectId
from mongomock.filtering import filter_applies

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
ORIGINAL = {}  # mongomock's own scanning methods, by name (tests compare the two)
PLAIN = (str, ObjectId, int, float)  # key values a map holds (bool is an int: harmless, it is checked)
_MAPS = "_crm_unique_maps"
_FLAGS = "_crm_flag_sets"
_NARROWED = "_crm_indexes_narrowed"  # set while mongomock's own check runs on some of the indexes


def patch_mongomock():
    """Apply the patches (once per process)."""
    from mongomock.collection import Collection

    if getattr(Collection, "_crm_patched", False):
        return
    _patch_bulk_writes()
    _patch_unique_lookups(Collection)
    _patch_aggregate(Collection)
    for where, names in LOCKED_METHODS.items():
        module, cls = where.rsplit(".", 1)
        owner = getattr(importlib.import_module(f"mongomock.{module}"), cls)
        for name in names:
            setattr(owner, name, _holding_lock(getattr(owner, name)))
    Collection._crm_patched = True


def _holding_lock(function):
    @functools.wraps(function)
    def locked(*args, **kwargs):
        with EMBEDDED_LOCK:
            return function(*args, **kwargs)

    return locked


# --- unique-index lookups ------------------------------------------------------------------------------

def _plain(value):
    return isinstance(value, PLAIN) and not isinstance(value, bool)


def _mappable(index):
    """A unique index whose map this module keeps: plain top-level fields, no partial filter."""
    return (index.get("unique") and not index.get("partialFilterExpression")
            and all("." not in key and key != "_id" for key, _ in index["key"]))


class _KeyMap:
    """For one unique index: key values → ids (possibly stale), and ids whose key is not plain."""

    def __init__(self, index, documents):
        self.index, self.fields = index, [key for key, _ in index["key"]]
        self.ids, self.irregular = {}, set()
        for doc_id, document in documents.items():
            self.add(doc_id, document)

    def add(self, doc_id, document):
        values = [document.get(field) for field in self.fields]
        if all(_plain(value) for value in values):
            self.ids.setdefault(tuple(values), set()).add(doc_id)
        elif any(value is not None and not _plain(value) for value in values):
            self.irregular.add(doc_id)  # an array or a sub-document can match a plain value
        # a missing key (None) cannot match a plain value: nothing to remember

    def candidates(self, values):
        return self.ids.get(tuple(values), set()) | self.irregular


def _kept(store, slot, wanted, build):
    """``{index name: build(index, documents)}`` for the store's current indexes that ``wanted`` picks,
    kept in ``slot`` (built on first use, rebuilt when an index is created again)."""
    kept = store.__dict__.setdefault(slot, {})
    current = {}
    for name, index in store.indexes.items():
        if wanted(index):
            known = kept.get(name)
            current[name] = known if known is not None and known.index is index else build(index, store._documents)
    store.__dict__[slot] = current
    return current


def _maps(store):
    """The store's key maps for its current unique indexes."""
    return _kept(store, _MAPS, _mappable, _KeyMap)


class _FlagSet:
    """For a partial index on the documents whose ``field`` is true (``{"tallyDue": True}``): the ids of
    those that had it true when last written. Writes only add; a query drops the ids whose document no
    longer has it (a failed write that put a document back never passes through a query)."""

    def __init__(self, index, documents):
        self.index, self.field = index, next(iter(index["partialFilterExpression"]))
        self.ids = set()
        for doc_id, document in documents.items():
            self.add(doc_id, document)

    def _flagged(self, document):
        value = document.get(self.field)
        if value is True or value is None:
            return value is True
        return filter_applies({self.field: True}, document)  # 1, [True], …: as mongomock's matcher says

    def add(self, doc_id, document):
        if self._flagged(document):
            self.ids.add(doc_id)

    def candidates(self, documents):
        self.ids -= {doc_id for doc_id in self.ids if doc_id not in documents or not self._flagged(documents[doc_id])}
        return self.ids


def _flag_index(index):
    """A partial index whose filter is one field being true."""
    condition = index.get("partialFilterExpression")
    return isinstance(condition, dict) and len(condition) == 1 and next(iter(condition.values())) is True


def _flags(store):
    """The store's flag sets for its current partial indexes on a true field."""
    return _kept(store, _FLAGS, _flag_index, _FlagSet)


def _candidate_ids(collection, spec):
    """The ids that can match ``spec`` (a superset), or None when the collection must be scanned."""
    store = collection._store
    if not isinstance(spec, dict) or store._ttl_indexes or store.__dict__.get(_NARROWED):
        return None
    wanted = spec.get("_id")
    if _plain(wanted):
        return [wanted]
    if _plain_in(wanted):
        return list(dict.fromkeys(wanted["$in"]))
    for key_map in _maps(store).values():
        values = [spec.get(field) for field in key_map.fields]
        if all(_plain(value) for value in values):
            return list(key_map.candidates(values))
        if len(values) == 1 and _plain_in(values[0]):  # {"email": {"$in": [...]}}
            return list(set().union(*(key_map.candidates([value]) for value in values[0]["$in"])))
    for flag in _flags(store).values():
        if spec.get(flag.field) is True:
            return list(flag.candidates(store._documents))
    return None


def _plain_in(condition):
    """True for ``{"$in": [plain values]}``."""
    return (isinstance(condition, dict) and list(condition) == ["$in"] and isinstance(condition["$in"], (list, tuple))
            and all(_plain(value) for value in condition["$in"]))


def _patch_unique_lookups(Collection):
    from mongomock import DuplicateKeyError
    from mongomock.filtering import filter_applies

    scan = ORIGINAL["_iter_documents"] = Collection._iter_documents
    ensure_uniques = ORIGINAL["_ensure_uniques"] = Collection._ensure_uniques

    def _iter_documents(self, filter):
        ids = _candidate_ids(self, filter)
        if ids is None:
            return scan(self, filter)
        documents = self._store._documents
        if len(ids) > 1:  # in the store's order, as the scan yields them (delete_one takes the first)
            wanted = set(ids)
            ids = [doc_id for doc_id in documents if doc_id in wanted]
        found = [documents[doc_id] for doc_id in ids if doc_id in documents]
        return (document for document in found if filter_applies(filter, document))

    def _ensure_uniques(self, new_data):
        store = self._store
        for flag in _flags(store).values():
            flag.add(new_data["_id"], new_data)
        maps = _maps(store)
        if not maps:
            return ensure_uniques(self, new_data)
        doc_id = new_data["_id"]
        for key_map in maps.values():
            key_map.add(doc_id, new_data)
        others = {name: index for name, index in store.indexes.items() if name not in maps}
        for key_map in maps.values():
            values = [new_data.get(field) for field in key_map.fields]
            if not all(_plain(value) for value in values):
                continue  # a missing key: the scan below (sparse, or nulls) decides
            spec = dict(zip(key_map.fields, values))
            documents = store._documents
            matches = sum(1 for candidate in key_map.candidates(values)
                          if candidate in documents and filter_applies(spec, documents[candidate]))
            if matches > 1:
                raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
        irregular = [name for name, key_map in maps.items()
                     if not all(_plain(new_data.get(field)) for field in key_map.fields)]
        if others or irregular:  # mongomock's own scan for every index this module does not decide
            indexes = store.indexes
            store.indexes = {name: indexes[name] for name in list(others) + irregular}
            store.__dict__[_NARROWED] = True  # the maps are neither read nor rebuilt for the narrowed set
            try:
                ensure_uniques(self, new_data)
            finally:
                store.indexes = indexes
                store.__dict__[_NARROWED] = False
        return None

    Collection._iter_documents = _iter_documents
    Collection._ensure_uniques = _ensure_uniques


# --- aggregations ------------------------------------------------------------------------------------------

def _patch_aggregate(Collection):
    from mongomock import aggregate as stages

    whole = ORIGINAL["aggregate"] = Collection.aggregate

    def aggregate(self, pipeline, session=None, **kwargs):
        pipeline = list(pipeline)
        if not pipeline or list(pipeline[0]) != ["$match"]:
            return whole(self, pipeline, session=session, **kwargs)
        matched = list(self.find(pipeline[0]["$match"]))
        return stages.process_pipeline(matched, self.database, pipeline[1:], session)

    Collection.aggregate = aggregate


# --- bulk writes ------------------------------------------------------------------------------------------

def _patch_bulk_writes():
    """pymongo ≥ 4.11 hands ``UpdateOne``'s ``sort`` (None unless given) to the bulk builder, which
    does not know it (dropped when unset: the project never sorts a bulk update); and each
    ``upserted`` entry's ``index`` must be the operation's position, not the count of upserts so far."""
    from mongomock.collection import BulkOperationBuilder

    original = BulkOperationBuilder.add_update
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

    def add_update(self, *args, sort=None, **kwargs):
        if sort is not None:
            raise NotImplementedError("the embedded store cannot sort a bulk update")
        return original(self, *args, **kwargs)

    BulkOperationBuilder.execute = execute
    BulkOperationBuilder.add_update = add_update
