"""Orders: recording them credits the customer atomically."""
import threading
from datetime import datetime, timedelta, timezone

import pytest

from models import Customer, Order
from tests.checks import counts, error_of
from tests.factories import signed_in


def _iso(dt):
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("key", ["customer", "customerId"])
def test_create_order_with_either_customer_key(client, customer, key):
    made = customer()
    response = client.post("/api/orders", json={key: made["_id"], "amount": 150.5})
    assert response.status_code == 201
    body = response.get_json()
    assert body["customerId"] == made["_id"] and body["amount"] == 150.5
    assert body["date"].endswith("Z") and len(body["_id"]) == 24
    stored = Customer.objects.get(pk=made["_id"])
    assert stored.total_spend == 150.5 and stored.num_visits == 1
    assert _iso(stored.last_visit_date.replace(tzinfo=timezone.utc)) == body["date"]


def test_both_keys_equal_is_accepted(client, customer):
    made = customer()
    body = {"customer": made["_id"], "customerId": made["_id"], "amount": 1}
    assert client.post("/orders/", json=body).status_code == 201


def test_totals_after_many_orders_equal_the_sum(client, customer):
    made = customer()
    amounts = [10, 20.25, 0.5, 999.75, 1e9, 3]
    dates = ["2024-03-01", "2024-05-01T12:00:00Z", "2024-01-01", None, "2024-04-30", None]
    for amount, date in zip(amounts, dates):
        body = {"customer": made["_id"], "amount": amount, **({"date": date} if date else {})}
        assert client.post("/api/orders", json=body).status_code == 201
    stored = client.get(f"/api/customers/{made['_id']}").get_json()
    assert stored["totalSpend"] == sum(amounts)
    assert stored["numVisits"] == len(amounts)
    latest = max(o.date for o in Order.objects)
    assert stored["lastVisitDate"] == _iso(latest.replace(tzinfo=timezone.utc))


def test_last_visit_keeps_the_latest_date(client, customer):
    made = customer()
    client.post("/api/orders", json={"customer": made["_id"], "amount": 1, "date": "2024-06-01T10:00:00Z"})
    client.post("/api/orders", json={"customer": made["_id"], "amount": 1, "date": "2023-01-01"})
    stored = client.get(f"/api/customers/{made['_id']}").get_json()
    assert stored["lastVisitDate"] == "2024-06-01T10:00:00.000Z"


def test_date_with_offset_is_stored_as_utc(client, customer):
    made = customer()
    body = {"customer": made["_id"], "amount": 1, "date": "2024-06-01T12:00:00+02:00"}
    assert client.post("/api/orders", json=body).get_json()["date"] == "2024-06-01T10:00:00.000Z"


def test_fifty_concurrent_orders_leave_exact_totals(app, client, customer, staff_user):
    made = customer()
    errors = []

    def place(amount):
        worker = signed_in(app, staff_user)
        response = worker.post("/api/orders", json={"customer": made["_id"], "amount": amount})
        if response.status_code != 201:
            errors.append(response.get_json())

    threads = [threading.Thread(target=place, args=(i + 1,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = Customer.objects.get(pk=made["_id"])
    assert stored.num_visits == 50
    assert stored.total_spend == sum(range(1, 51))
    assert Order.objects.count() == 50


def _future(days):
    return _iso(datetime.now(timezone.utc) + timedelta(days=days))


BAD_ORDERS = [
    ({}, ["customerId", "amount"]),
    ({"amount": 10}, ["customerId"]),
    ({"customer": "CUSTOMER"}, ["amount"]),
    ({"customer": "abc", "amount": 10}, ["customerId"]),
    ({"customer": 12, "amount": 10}, ["customerId"]),
    ({"customer": {"$ne": None}, "amount": 10}, ["customerId"]),
    ({"customer": "CUSTOMER", "customerId": "64b7f0000000000000000000", "amount": 10}, ["customerId"]),
    ({"customer": "CUSTOMER", "amount": 0}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": -5}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": 1e9 + 1}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": "150.5"}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": True}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": None}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": [10]}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": {"$inc": 5}}, ["amount"]),
    ({"customer": "CUSTOMER", "amount": 10, "date": "yesterday"}, ["date"]),
    ({"customer": "CUSTOMER", "amount": 10, "date": "2024-13-01"}, ["date"]),
    ({"customer": "CUSTOMER", "amount": 10, "date": 1700000000}, ["date"]),
    ({"customer": "CUSTOMER", "amount": 10, "date": "FUTURE"}, ["date"]),
    ({"customer": "CUSTOMER", "amount": 10, "status": "paid"}, ["status"]),
]


@pytest.mark.parametrize("body, fields", BAD_ORDERS)
def test_bad_order_is_400_and_writes_nothing(client, customer, body, fields):
    made = customer()
    body = {
        key: made["_id"] if value == "CUSTOMER" else _future(2) if value == "FUTURE" else value
        for key, value in body.items()
    }
    response = client.post("/api/orders", json=body)
    assert response.status_code == 400
    assert sorted(response.get_json()["errors"]) == sorted(fields)
    assert counts()["orders"] == 0
    stored = Customer.objects.get(pk=made["_id"])
    assert (stored.total_spend, stored.num_visits, stored.last_visit_date) == (0, 0, None)


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_amount_is_400(client, customer, raw):
    made = customer()
    data = '{"customer": "%s", "amount": %s}' % (made["_id"], raw)
    response = client.post("/api/orders", data=data, content_type="application/json")
    assert response.status_code == 400
    assert "amount" in response.get_json()["errors"]
    assert counts()["orders"] == 0


def test_order_within_a_day_ahead_is_accepted(client, customer):
    made = customer()
    body = {"customer": made["_id"], "amount": 5, "date": _future(0.5)}
    assert client.post("/api/orders", json=body).status_code == 201


def test_unknown_customer_is_404_and_writes_nothing(client):
    response = client.post("/api/orders", json={"customer": "64b7f0000000000000000000", "amount": 5})
    assert response.status_code == 404
    assert error_of(response) == {"error": "Customer 64b7f0000000000000000000 not found"}
    assert counts()["orders"] == 0


@pytest.fixture
def order_history(client, customer):
    a, b = customer("A", "a@example.com"), customer("B", "b@example.com")
    for who, amount, date in [
        (a, 1, "2024-01-10"), (a, 2, "2024-02-10"), (b, 3, "2024-03-10"), (a, 4, "2024-04-10"),
    ]:
        client.post("/api/orders", json={"customer": who["_id"], "amount": amount, "date": date})
    return a, b


def _amounts(response):
    assert response.status_code == 200, response.get_json()
    return [item["amount"] for item in response.get_json()["items"]]


def test_an_order_that_cannot_be_stored_takes_its_credit_back(client, customer, monkeypatch):
    """The database goes away between the credit and the insert: 503, and the totals are as before."""
    from pymongo.errors import AutoReconnect

    created = customer()
    client.post("/api/orders", json={"customerId": created["_id"], "amount": 10})

    def lost(self, *args, **kwargs):
        raise AutoReconnect("connection lost")

    monkeypatch.setattr(Order, "save", lost)
    response = client.post("/api/orders", json={"customerId": created["_id"], "amount": 99})
    assert response.status_code == 503
    after = Customer.objects.get(pk=created["_id"])
    assert (after.total_spend, after.num_visits) == (10, 1) and Order.objects.count() == 1


def test_list_orders_newest_first_with_filters(client, order_history):
    a, b = order_history
    assert _amounts(client.get("/api/orders")) == [4, 3, 2, 1]
    assert _amounts(client.get(f"/api/orders?customerId={a['_id']}")) == [4, 2, 1]
    assert _amounts(client.get("/api/orders?from=2024-02-01&to=2024-03-31")) == [3, 2]
    assert _amounts(client.get(f"/api/orders?customerId={b['_id']}&from=2024-04-01")) == []
    page = client.get("/api/orders?per_page=3&page=2").get_json()
    assert page["total"] == 4 and [o["amount"] for o in page["items"]] == [1]


@pytest.mark.parametrize(
    "query, field",
    [("customerId=zzz", "customerId"), ("from=never", "from"), ("to=2024-02-30", "to"),
     ("per_page=1000", "per_page"), ("customer=abc", "customer"),
     ("from=2024-05-01&to=2024-04-01", "to")],
)
def test_bad_order_query_is_400(client, query, field):
    response = client.get(f"/api/orders?{query}")
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


def test_get_order_and_404(client, order_history):
    first = client.get("/api/orders").get_json()["items"][0]
    assert client.get(f"/api/orders/{first['_id']}").get_json() == first
    for ident in ("64b7f0000000000000000000", "xyz"):
        response = client.get(f"/api/orders/{ident}")
        assert response.status_code == 404
        assert error_of(response) == {"error": f"Order {ident} not found"}
