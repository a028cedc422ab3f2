"""The legacy campaign endpoints, exactly as the React client uses them."""
from datetime import datetime

import pytest

import engine
from models import Campaign
from tests.factories import seed_customers

SPEND_OVER_100 = {
    "rules": [{"field": "totalSpend", "operator": ">", "value": "100"}],
    "logicalOperator": "AND",
    "message": "Hi {{name}}, here is 10% off!",
}


@pytest.fixture
def shoppers(app):
    seed_customers([
        {"name": "Low", "email": "low@example.com", "totalSpend": 50.0, "numVisits": 1,
         "lastVisitDate": datetime(2024, 1, 5, 10)},
        {"name": "Mid", "email": "mid@example.com", "totalSpend": 150.0, "numVisits": 3,
         "lastVisitDate": datetime(2024, 5, 1, 23, 59)},
        {"name": "High", "email": "high@example.com", "totalSpend": 5000.0, "numVisits": 9,
         "lastVisitDate": datetime(2024, 6, 1)},
        {"name": "New", "email": "new@example.com", "totalSpend": 0.0, "numVisits": 0},
    ])


def _size(client, body, path="/api/campaigns/check-audience-size"):
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["audienceSize"]


@pytest.mark.parametrize(
    "rules, logical, size",
    [
        ([("totalSpend", ">", "100")], "AND", 2),
        ([("totalSpend", ">", "99.5"), ("numVisits", "<", "5")], "AND", 1),
        ([("totalSpend", ">", "1000"), ("numVisits", "<=", "1")], "OR", 3),
        ([("lastVisitDate", "=", "2024-05-01")], "AND", 1),
        ([("lastVisitDate", "<=", "2024-05-01")], "AND", 2),
        ([("lastVisitDate", ">", "2024-05-01")], "AND", 1),
        ([("lastVisitDate", "!=", "2024-05-01")], "AND", 3),
        ([("numVisits", "=", "0")], "AND", 1),
        ([], "AND", 4),
    ],
)
def test_check_audience_size(client, shoppers, rules, logical, size):
    body = {"rules": [dict(zip(("field", "operator", "value"), r)) for r in rules],
            "logicalOperator": logical, "message": "hello"}
    assert _size(client, body) == size


def test_check_audience_size_without_message_or_operator(client, shoppers):
    assert _size(client, {"rules": SPEND_OVER_100["rules"]}) == 2


@pytest.mark.parametrize(
    "path",
    ["/api/campaigns/check-audience-size", "/api/campaigns/check-audience-size/",
     "/campaigns/check-audience-size"],
)
def test_check_audience_size_aliases(client, shoppers, path):
    assert _size(client, SPEND_OVER_100, path) == 2


def test_create_audience_then_list_as_the_client_reads_it(client, shoppers):
    first = client.post("/api/campaigns/create-audience", json=SPEND_OVER_100)
    assert first.status_code == 201
    second = client.post("/api/campaigns/create-audience",
                         json={**SPEND_OVER_100, "message": "Second"})
    assert second.status_code == 201
    assert engine.wait_idle(client.application, timeout=30)  # sending (and counting) is the engine's job

    response = client.get("/api/campaigns/")
    assert response.status_code == 200
    items = response.get_json()
    assert isinstance(items, list) and len(items) == 2
    assert response.headers["X-Total-Count"] == "2"
    assert [c["message"] for c in items] == ["Second", SPEND_OVER_100["message"]]
    for item in items:
        assert len(item["_id"]) == 24
        assert datetime.fromisoformat(item["sentAt"].replace("Z", "+00:00"))
        assert isinstance(item["status"], str) and item["status"]
        sized = [a for a in item["audience"] if "audienceSize" in a]
        assert sized == [{"audienceSize": 2}]
    assert items[0]["rules"] == SPEND_OVER_100["rules"]
    assert items[0]["logicalOperator"] == "AND"


def test_campaign_list_without_trailing_slash_and_alias(client):
    client.post("/api/campaigns/create-audience", json=SPEND_OVER_100)
    for path in ("/api/campaigns", "/campaigns", "/campaigns/"):
        assert len(client.get(path).get_json()) == 1


def test_campaign_list_pages(client):
    for index in range(3):
        client.post("/api/campaigns/create-audience", json={**SPEND_OVER_100, "message": f"m{index}"})
    response = client.get("/api/campaigns/?per_page=2&page=2")
    assert [c["message"] for c in response.get_json()] == ["m0"]
    assert response.headers["X-Total-Count"] == "3"


def test_campaign_records_creator(client, staff_user):
    client.post("/api/campaigns/create-audience", json=SPEND_OVER_100)
    assert Campaign.objects.get().created_by == staff_user.pk


def _rules(*triples):
    return [dict(zip(("field", "operator", "value"), t)) for t in triples]


BAD_AUDIENCES = [
    ({"rules": _rules(("", ">", "100"))}, "rules[0].field"),
    ({"rules": _rules(("totalSpend", "", "100"))}, "rules[0].operator"),
    ({"rules": _rules(("totalSpend", ">", ""))}, "rules[0].value"),
    ({"rules": _rules(("totalSpend", ">", "1"), ("numVisits", ">", "lots"))}, "rules[1].value"),
    ({"rules": _rules(("lastVisitDate", ">", "05/01/2024"))}, "rules[0].value"),
    ({"rules": _rules(("lastVisitDate", ">", "2024-02-30"))}, "rules[0].value"),
    ({"rules": _rules(("totalSpend", ">", {"$gt": 0}))}, "rules[0].value"),
    ({"rules": _rules(("totalSpend", ">", None))}, "rules[0].value"),
    ({"rules": _rules(("totalSpend", ">", True))}, "rules[0].value"),
    ({"rules": _rules(("$where", "=", "1"))}, "rules[0].field"),
    ({"rules": _rules(("totalSpend", "$gt", "1"))}, "rules[0].operator"),
    ({"rules": [{"field": "totalSpend", "operator": ">"}]}, "rules[0].value"),
    ({"rules": [{"field": "totalSpend", "operator": ">", "value": "1", "x": 1}]}, "rules[0].x"),
    ({"rules": ["totalSpend > 1"]}, "rules[0]"),
    ({"rules": "totalSpend > 1"}, "rules"),
    ({"rules": _rules(*[("totalSpend", ">", "1")] * 51)}, "rules"),
    ({}, "rules"),
    ({"rules": _rules(("totalSpend", ">", "1")), "logicalOperator": "XOR"}, "logicalOperator"),
    ({"rules": _rules(("totalSpend", ">", "1")), "logicalOperator": "and"}, "logicalOperator"),
    ({"rules": _rules(("totalSpend", ">", "1")), "message": 5}, "message"),
    ({"rules": _rules(("totalSpend", ">", "1")), "name": "x"}, "name"),
]


@pytest.mark.parametrize("body, path", BAD_AUDIENCES)
@pytest.mark.parametrize("endpoint", ["check-audience-size", "create-audience"])
def test_bad_rules_are_400_naming_the_rule(client, body, path, endpoint):
    if endpoint == "create-audience":
        body = {"message": "hello", **body}
    response = client.post(f"/api/campaigns/{endpoint}", json=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert path in payload["errors"], payload
    assert path in payload["error"]
    assert Campaign.objects.count() == 0


@pytest.mark.parametrize("message", [None, "", "x" * 5001, ["hi"]])
def test_create_audience_requires_a_message(client, message):
    body = {"rules": SPEND_OVER_100["rules"], "logicalOperator": "AND"}
    if message is not None:
        body["message"] = message
    response = client.post("/api/campaigns/create-audience", json=body)
    assert response.status_code == 400
    assert "message" in response.get_json()["errors"]
    assert Campaign.objects.count() == 0
