"""Serve the MongoDB wire protocol on loopback with mongoeco, until SIGTERM or SIGINT.

A stand-in for a real MongoDB in tests and local production-shape runs (no mongod can be installed
on our machines). Run it through ``scripts/mongo-standin.sh``, which makes its Python >= 3.13 venv.
"""
import argparse
import asyncio
import functools
import logging
import signal
import sys

from bson import ObjectId
from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


def parse_args(argv):
    """Command-line options (the shell script fills them from the environment)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--data", default=":memory:",
                        help="SQLite file to keep data in (default: in memory, gone when stopped)")
    parser.add_argument("--engine", choices=("sqlite", "memory"), default="sqlite",
                        help="sqlite runs work off the event loop; memory stalls other clients")
    return parser.parse_args(argv)


def _no_id_scan_for_exact_ids(engine_cls, method_name):
    """Skip mongoeco's full-collection ``_id`` scan when the ``_id`` is an ObjectId or a string.

    mongoeco 4.11 checks a single-document insert's ``_id`` by comparing it with every stored
    document (so that e.g. ``1`` and ``1.0`` collide, as in MongoDB), and its wire server inserts
    documents one at a time: loading N documents costs O(N²) (2,000 inserts took ~60 s). For ObjectId
    and string ids the storage-key lookup it does first is already exact, so the scan is skipped
    for those only; unique indexes and numeric or document ids are checked as before.
    """
    original = getattr(engine_cls, method_name)

    @functools.wraps(original)
    def check(self, db_name, coll_name, document, *args, **kwargs):
        if isinstance(document.get("_id"), (ObjectId, str)):
            kwargs["scan_payload_id"] = False
        return original(self, db_name, coll_name, document, *args, **kwargs)

    setattr(engine_cls, method_name, check)


def _compound_unique_by_lookup(engine_cls):
    """Check compound unique indexes of the memory engine by a lookup in their index data.

    mongoeco 4.11 looks single-field unique indexes up but scans the whole collection for compound
    ones (one scan per inserted document: 200 inserts at 500 documents took 13 s). Here a compound
    unique index whose index data has no entry for the candidate's key is known to hold and is left
    out of the scan (an update may find its own document there); whenever the lookup finds another
    entry (a duplicate), or has no index data, mongoeco's own check runs unchanged.
    """
    original = engine_cls._ensure_unique_indexes

    @functools.wraps(original)
    def check(self, db_name, coll_name, document, *args, **kwargs):
        indexes_view = kwargs.get("indexes_view") or self._indexes
        index_data = (kwargs.get("index_data_view") or self._index_data).get(db_name, {}).get(coll_name, {})
        indexes = indexes_view.get(db_name, {}).get(coll_name, [])
        exclude = kwargs.get("exclude_storage_key")
        own = set() if exclude is None else {exclude, self._storage_key(exclude)}  # an update's own entry
        settled = []
        for index in indexes:
            if not index.get("unique") or len(index["fields"]) < 2 or index.get("collation") is not None:
                continue
            index_map = index_data.get(index["name"])
            keys = self._unique_index_keys(document, index["fields"]) if index_map is not None else None
            if keys and all(set(index_map.get(key) or ()) <= own for key in keys):
                settled.append(index["name"])
        if settled:
            kwargs["indexes_view"] = {db_name: {coll_name: [
                index for index in indexes if index["name"] not in settled]}}
        return original(self, db_name, coll_name, document, *args, **kwargs)

    engine_cls._ensure_unique_indexes = check


_no_id_scan_for_exact_ids(MemoryEngine, "_ensure_unique_indexes")
_no_id_scan_for_exact_ids(SQLiteEngine, "_validate_document_against_unique_indexes")
_compound_unique_by_lookup(MemoryEngine)


def make_engine(args):
    """The storage engine; no materialization limit so counts over 50k documents work."""
    if args.engine == "memory":
        return MemoryEngine(aggregation_materialization_limit=None)
    return SQLiteEngine(args.data, aggregation_materialization_limit=None)


async def serve(args):
    """Serve until a stop signal arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncMongoEcoProxyServer(engine=make_engine(args), host=args.host, port=args.port):
        logging.info("MongoDB stand-in (mongoeco) listening on %s:%d, data %s",
                     args.host, args.port, args.data)
        await stop.wait()
    logging.info("MongoDB stand-in stopped")


def main(argv=None):
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="mongo-standin: %(message)s", stream=sys.stderr)
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
