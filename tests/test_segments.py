"""The rule compiler: a table of rules → queries, and counts equal to a brute-force evaluation."""
import itertools
import random
from datetime import datetime, timedelta

import pytest

from models import Customer
from segments import RuleError, compile_rules

D = datetime(2024, 5, 1)
NEXT = datetime(2024, 5, 2)


def rule(field, operator, value):
    return {"field": field, "operator": operator, "value": value}


@pytest.mark.parametrize(
    "rules, logical, expected",
    [
        ([], "AND", {}),
        ([rule("totalSpend", ">", "100")], "AND", {"totalSpend": {"$gt": 100.0}}),
        ([rule("totalSpend", ">=", "99.5")], "AND", {"totalSpend": {"$gte": 99.5}}),
        ([rule("numVisits", "<", " 3 ")], "AND", {"numVisits": {"$lt": 3.0}}),
        ([rule("numVisits", "<=", 3)], "AND", {"numVisits": {"$lte": 3.0}}),
        ([rule("numVisits", "=", "2")], "AND", {"numVisits": 2.0}),
        ([rule("numVisits", "!=", "2")], "AND", {"numVisits": {"$ne": 2.0}}),
        ([rule("totalSpend", ">", "1e3")], "AND", {"totalSpend": {"$gt": 1000.0}}),
        ([rule("lastVisitDate", ">", "2024-05-01")], "AND", {"lastVisitDate": {"$gte": NEXT}}),
        ([rule("lastVisitDate", ">=", "2024-05-01")], "AND", {"lastVisitDate": {"$gte": D}}),
        ([rule("lastVisitDate", "<", "2024-05-01")], "AND", {"lastVisitDate": {"$lt": D}}),
        ([rule("lastVisitDate", "<=", "2024-05-01")], "AND", {"lastVisitDate": {"$lt": NEXT}}),
        ([rule("lastVisitDate", "=", "2024-05-01")], "AND",
         {"lastVisitDate": {"$gte": D, "$lt": NEXT}}),
        ([rule("lastVisitDate", "!=", "2024-05-01")], "AND",
         {"lastVisitDate": {"$not": {"$gte": D, "$lt": NEXT}}}),
        ([rule("lastVisitDate", "<", "2024-05-01T10:30:00+02:00")], "AND",
         {"lastVisitDate": {"$lt": datetime(2024, 5, 1, 8, 30)}}),
        ([rule("totalSpend", ">", "100"), rule("numVisits", "<", "3")], "AND",
         {"$and": [{"totalSpend": {"$gt": 100.0}}, {"numVisits": {"$lt": 3.0}}]}),
        ([rule("totalSpend", ">", "100"), rule("numVisits", "<", "3")], "OR",
         {"$or": [{"totalSpend": {"$gt": 100.0}}, {"numVisits": {"$lt": 3.0}}]}),
    ],
)
def test_rules_compile_to_query(rules, logical, expected):
    assert compile_rules(rules, logical) == expected


@pytest.mark.parametrize(
    "bad",
    [
        rule("totalSpend", ">", ""),
        rule("totalSpend", ">", "abc"),
        rule("totalSpend", ">", "1,000"),
        rule("totalSpend", ">", "NaN"),
        rule("totalSpend", ">", "inf"),
        rule("totalSpend", ">", "1e400"),
        rule("totalSpend", ">", True),
        rule("totalSpend", ">", {"$gt": 0}),
        rule("lastVisitDate", ">", "2024-02-30"),
        rule("lastVisitDate", ">", "yesterday"),
        rule("lastVisitDate", ">", 20240501),
        rule("lastVisitDate", ">", "9999-12-31T23:59:59.9999"),
        rule("email", "=", "x"),
        rule("totalSpend", "$where", "1"),
    ],
)
def test_unusable_rules_raise(bad):
    with pytest.raises(RuleError):
        compile_rules([bad])


# --- brute force -------------------------------------------------------------------------------
OPS = {
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _python_match(customer, r):
    """Evaluate one rule in plain Python, with the documented day semantics for dates."""
    if r["field"] == "lastVisitDate":
        day = datetime.fromisoformat(r["value"]).date()
        visit = customer["lastVisitDate"]
        visited = None if visit is None else visit.date()
        return OPS[r["operator"]](visited, day)
    return OPS[r["operator"]](customer[r["field"]], float(r["value"]))


@pytest.fixture
def seeded(app):
    rng = random.Random(20241126)
    docs = []
    for i in range(400):
        visit = None if i % 7 == 0 else datetime(2024, 4, 20) + timedelta(
            days=rng.randint(0, 20), hours=rng.randint(0, 23), minutes=rng.randint(0, 59)
        )
        docs.append(
            {"name": f"C{i}", "email": f"c{i}@example.com", "totalSpend": float(rng.choice([0, 50, 100, 150, 200, 999.5])),
             "numVisits": rng.randint(0, 6), "lastVisitDate": visit}
        )
    Customer._get_collection().insert_many([dict(d) for d in docs])
    return docs


CANDIDATES = [
    rule("totalSpend", op, v) for op in OPS for v in ("100", "999.5")
] + [rule("numVisits", op, v) for op in OPS for v in ("0", "3")] + [
    rule("lastVisitDate", op, v) for op in OPS for v in ("2024-05-01", "2024-04-20")
]


def test_counts_match_brute_force(seeded):
    rng = random.Random(7)
    combos = [[r] for r in CANDIDATES] + [
        rng.sample(CANDIDATES, k) for k in (2, 3, 4) for _ in range(15)
    ]
    for rules, logical in itertools.product(combos, ("AND", "OR")):
        combine = all if logical == "AND" else any
        expected = sum(1 for c in seeded if combine(_python_match(c, r) for r in rules))
        query = compile_rules(rules, logical)
        assert Customer.objects(__raw__=query).count() == expected, (rules, logical, query)
