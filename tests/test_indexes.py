"""Every query the API runs on a large collection has an index that serves it on MongoDB.

The shapes below are the API's queries (filter equality fields, sort, range fields); each is checked
against the indexes the database actually built, by MongoDB's equality → sort → range rule. Dropping
or reordering an index fails this test.
"""
import mongoengine
import pytest

from models.db import ensure_indexes

ASC, DESC = 1, -1
CUSTOMER_SORTS = ["createdAt", "updatedAt", "name", "totalSpend", "numVisits", "lastVisitDate"]

# (collection, what, equality fields, sort [(field, direction)], range fields)
SHAPES = [
    *[("customers", f"list sorted by {key}", [], [(key, DESC), ("_id", DESC)], [])
      for key in CUSTOMER_SORTS],
    ("customers", "list sorted by email", [], [("email", ASC)], []),
    ("customers", "by email (upsert, duplicate check, ?email=)", ["email"], [], []),
    ("customers", "segment rule on totalSpend", [], [], ["totalSpend"]),
    ("customers", "segment rule on numVisits", [], [], ["numVisits"]),
    ("customers", "segment rule on lastVisitDate", [], [], ["lastVisitDate"]),
    ("customers", "segment rule on tags", ["tags"], [], []),
    ("orders", "a customer's orders, newest first, by date range", ["customer"],
     [("date", DESC), ("_id", DESC)], ["date"]),
    ("orders", "all orders, newest first, by date range", [], [("date", DESC), ("_id", DESC)], ["date"]),
    ("communication_logs", "a campaign's deliveries", ["campaign"], [("customer", ASC)], []),
    ("communication_logs", "a campaign's deliveries by status (and stats, finish check)",
     ["campaign", "status"], [("customer", ASC)], []),
    ("communication_logs", "a batch's PENDING records (claim, outcome write)", ["batch", "status"], [], []),
    ("communication_logs", "receipt by vendor message id", ["vendorMessageId"], [], []),
    ("communication_logs", "records due to be folded into tallies (the sweep)", ["tallyDue"], [], []),
    ("communication_logs", "a campaign's records due to be folded (a report)", ["tallyDue", "campaign"], [], []),
    ("dispatch_claims", "claim by batch token", ["_id"], [], []),
    ("campaigns", "scheduled campaigns that are due", ["status"], [], ["scheduledAt"]),
    ("sessions", "session by id (every signed-in request)", ["id"], [], []),
    ("audit_events", "audit log, newest first", [], [("at", DESC), ("_id", DESC)], ["at"]),
    ("audit_events", "audit log by action", ["action"], [("at", DESC), ("_id", DESC)], ["at"]),
    ("audit_events", "audit log by actor", ["actor"], [("at", DESC), ("_id", DESC)], ["at"]),
    ("api_keys", "key by hash (every API-key request)", ["keyHash"], [], []),
    ("users", "user by Google subject (sign-in)", ["googleId"], [], []),
]


def serves(key, unique, equality, sort, ranges):
    """True when an index with ``key`` serves the shape without a collection scan or in-memory sort."""
    fields = [field for field, _ in key]
    if set(fields[:len(equality)]) != set(equality):
        return False
    if unique and fields == equality:
        return True  # at most one document: nothing to sort
    rest = key[len(equality):]
    head = rest[:len(sort)]
    if [field for field, _ in head] != [field for field, _ in sort]:
        return False
    directions = [(int(d), s) for (_, d), (_, s) in zip(head, sort)]
    if not (all(d == s for d, s in directions) or all(d == -s for d, s in directions)):
        return False
    sorted_fields = {field for field, _ in sort}
    remaining = [r for r in ranges if r not in sorted_fields]
    return {field for field, _ in rest[len(sort):len(sort) + len(remaining)]} == set(remaining)


def built_indexes(collection):
    """``[(key, unique)]`` as the database reports them."""
    info = mongoengine.get_db()[collection].index_information()
    return [([(field, int(direction)) for field, direction in spec["key"]], bool(spec.get("unique")) or
             spec["key"] == [("_id", 1)]) for spec in info.values()]


@pytest.fixture
def indexed(app, client):
    """Indexes as a started server creates them, and a session stored (its collection's indexes)."""
    ensure_indexes()
    assert client.get("/api/auth/me").status_code == 200


@pytest.mark.parametrize("collection, what, equality, sort, ranges", SHAPES,
                         ids=[f"{c}: {w}" for c, w, *_ in SHAPES])
def test_query_shape_is_served_by_an_index(indexed, collection, what, equality, sort, ranges):
    indexes = built_indexes(collection)
    assert any(serves(key, unique, equality, sort, ranges) for key, unique in indexes), (
        f"no index on {collection} serves {what}: {indexes}")


@pytest.mark.parametrize("key, unique, shape, expected", [
    ([("campaign", 1), ("status", 1), ("customer", 1)], False, (["campaign", "status"], [("customer", 1)], []), True),
    ([("campaign", 1), ("customer", 1)], True, (["campaign", "status"], [("customer", 1)], []), False),
    ([("date", -1), ("_id", -1)], False, ([], [("date", 1), ("_id", 1)], ["date"]), True),  # walked backwards
    ([("date", -1), ("_id", 1)], False, ([], [("date", -1), ("_id", -1)], []), False),  # mixed directions
    ([("date", -1)], False, ([], [("date", -1), ("_id", -1)], []), False),  # ties need an in-memory sort
    ([("status", 1)], False, (["status"], [], ["scheduledAt"]), False),
    ([("email", 1)], True, (["email"], [("name", 1)], []), True),
])
def test_the_rule_itself(key, unique, shape, expected):
    assert serves(key, unique, *shape) is expected
