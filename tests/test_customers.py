"""Customers: create, list, read, update, delete."""
import pytest

from models import Customer, Order
from tests.checks import counts, error_of


def test_create_returns_201_with_the_document(client):
    response = client.post("/api/customers", json={"name": "  Ada  ", "email": " Ada@Example.COM "})
    assert response.status_code == 201
    body = response.get_json()
    assert body["name"] == "Ada"
    assert body["email"] == "ada@example.com"
    assert body["totalSpend"] == 0 and body["numVisits"] == 0 and body["lastVisitDate"] is None
    assert body["createdAt"].endswith("Z") and body["updatedAt"] == body["createdAt"]
    assert len(body["_id"]) == 24
    assert Customer.objects.get(email="ada@example.com").name == "Ada"


@pytest.mark.parametrize("path", ["/api/customers", "/api/customers/", "/customers", "/customers/"])
def test_create_on_every_alias(client, path):
    assert client.post(path, json={"name": "A", "email": "a@example.com"}).status_code == 201


@pytest.mark.parametrize("email", ["grace@example.com", "GRACE@example.com", "  grace@EXAMPLE.com"])
def test_duplicate_email_is_409(client, customer, email):
    customer()
    response = client.post("/api/customers", json={"name": "Other", "email": email})
    assert response.status_code == 409
    assert error_of(response) == {
        "error": "A customer with this email already exists",
        "errors": {"email": ["Already in use."]},
    }
    assert Customer.objects.count() == 1


BAD_CUSTOMERS = [
    ({}, ["name", "email"]),
    ({"name": "A"}, ["email"]),
    ({"email": "a@example.com"}, ["name"]),
    ({"name": "", "email": "a@example.com"}, ["name"]),
    ({"name": "   ", "email": "a@example.com"}, ["name"]),
    ({"name": "x" * 201, "email": "a@example.com"}, ["name"]),
    ({"name": "A", "email": "not-an-email"}, ["email"]),
    ({"name": "A", "email": ""}, ["email"]),
    ({"name": 5, "email": "a@example.com"}, ["name"]),
    ({"name": "A", "email": ["a@example.com"]}, ["email"]),
    ({"name": "A", "email": {"$gt": ""}}, ["email"]),
    ({"name": {"$ne": None}, "email": "a@example.com"}, ["name"]),
    ({"name": "A", "email": "a@example.com", "totalSpend": 1000}, ["totalSpend"]),
    ({"name": "A", "email": "a@example.com", "$where": "1"}, ["$where"]),
    ({"name": "A", "email": "a@example.com", "createdAt": "2020-01-01"}, ["createdAt"]),
    ({"name": None, "email": "a@example.com"}, ["name"]),
]


@pytest.mark.parametrize("body, fields", BAD_CUSTOMERS)
def test_bad_customer_is_400_naming_fields_and_writes_nothing(client, body, fields):
    response = client.post("/api/customers", json=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert sorted(payload["errors"]) == sorted(fields)
    assert all(field in payload["error"] for field in fields)
    assert counts()["customers"] == 0


@pytest.mark.parametrize(
    "data, content_type, status, message",
    [
        ("{not json", "application/json", 400, "Malformed JSON in request body"),
        ("[1, 2]", "application/json", 400, "Request body must be a JSON object"),
        ('"text"', "application/json", 400, "Request body must be a JSON object"),
        ("null", "application/json", 400, "Request body must be a JSON object"),
        ("name=A&email=a@example.com", "application/x-www-form-urlencoded", 415,
         "Content-Type must be application/json"),
    ],
)
def test_unparseable_body_is_4xx(client, data, content_type, status, message):
    response = client.post("/api/customers", data=data, content_type=content_type)
    assert response.status_code == status
    assert error_of(response) == {"error": message}
    assert counts()["customers"] == 0


def _names(response):
    return [item["name"] for item in response.get_json()["items"]]


@pytest.fixture
def five_customers(customer):
    made = []
    for index, (name, email) in enumerate(
        [("Alice", "alice@shop.com"), ("albert", "albert@mail.com"), ("Bob", "bob@alpha.io"),
         ("Carol", "carol@example.com"), ("a.b", "dots@example.com")]
    ):
        made.append(customer(name, email))
        Customer.objects(email=email).update_one(set__total_spend=float(index * 100))
    return made


def test_list_paginates_newest_first(client, five_customers):
    response = client.get("/api/customers?per_page=2")
    body = response.get_json()
    assert response.status_code == 200
    assert body["total"] == 5 and body["page"] == 1 and body["per_page"] == 2
    assert [c["name"] for c in body["items"]] == ["a.b", "Carol"]
    assert _names(client.get("/api/customers?per_page=2&page=3")) == ["Alice"]
    assert _names(client.get("/api/customers?per_page=2&page=4")) == []


def test_list_defaults(client, five_customers):
    body = client.get("/api/customers/").get_json()
    assert body["page"] == 1 and body["per_page"] == 20 and len(body["items"]) == 5


def test_page_size_is_perPage_and_per_page_still_works(client, five_customers):
    for name in ("perPage", "per_page"):
        body = client.get(f"/api/customers?{name}=2").get_json()
        assert body["perPage"] == body["per_page"] == 2 and len(body["items"]) == 2


@pytest.mark.parametrize(
    "query, expected",
    [
        ("q=al", ["Alice", "albert"]),
        ("q=AL", ["Alice", "albert"]),
        ("q=bob@", ["Bob"]),
        ("q=a.", ["a.b"]),
        ("q=a.*", []),
        ("q=.*", []),
        ("q=%5E", []),
        ("q=lice", []),
        ("email=CAROL@example.com", ["Carol"]),
        ("email=carol@example", []),
        ("sort=totalSpend", ["Alice", "albert", "Bob", "Carol", "a.b"]),
        ("sort=-totalSpend&per_page=2", ["a.b", "Carol"]),
        ("sort=name", ["Alice", "Bob", "Carol", "a.b", "albert"]),
    ],
)
def test_list_filters_and_sorts(client, five_customers, query, expected):
    response = client.get(f"/api/customers?{query}")
    assert response.status_code == 200
    names = _names(response)
    assert names == expected if "sort" in query else sorted(names) == sorted(expected)


@pytest.mark.parametrize(
    "query, field",
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("per_page=101", "per_page"),
        ("per_page=0", "per_page"),
        ("perPage=101", "perPage"),
        ("perPage=2&per_page=2", "per_page"),
        ("sort=password", "sort"),
        ("sort=$where", "sort"),
        ("email=", "email"),
        ("q=", "q"),
        ("color=red", "color"),
    ],
)
def test_bad_list_query_is_400(client, query, field):
    response = client.get(f"/api/customers?{query}")
    assert response.status_code == 400
    assert field in response.get_json()["errors"]


def test_get_one(client, customer):
    made = customer()
    response = client.get(f"/api/customers/{made['_id']}")
    assert response.status_code == 200
    assert response.get_json() == made


@pytest.mark.parametrize("ident", ["64b7f0000000000000000000", "nope", "64b7f000000000000000000g"])
@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_customer_is_404(client, ident, method):
    response = getattr(client, method)(f"/api/customers/{ident}", json={"name": "X"})
    assert response.status_code == 404
    assert error_of(response) == {"error": f"Customer {ident} not found"}


def test_patch_updates_name_and_email(client, customer):
    made = customer()
    response = client.patch(f"/api/customers/{made['_id']}", json={"email": "G@Navy.mil"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == "g@navy.mil" and body["name"] == "Grace Hopper"
    assert body["updatedAt"] >= made["updatedAt"]
    response = client.patch(f"/api/customers/{made['_id']}", json={"name": "Amazing Grace"})
    assert response.get_json()["name"] == "Amazing Grace"
    assert Customer.objects.get(email="g@navy.mil").name == "Amazing Grace"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "_schema"),
        ({"name": ""}, "name"),
        ({"email": "bad"}, "email"),
        ({"totalSpend": 5}, "totalSpend"),
        ({"numVisits": 5}, "numVisits"),
        ({"email": {"$set": {"totalSpend": 9}}}, "email"),
    ],
)
def test_bad_patch_is_400_and_changes_nothing(client, customer, body, field):
    made = customer()
    response = client.patch(f"/api/customers/{made['_id']}", json=body)
    assert response.status_code == 400
    assert field in response.get_json()["errors"]
    assert client.get(f"/api/customers/{made['_id']}").get_json() == made


def test_patch_to_taken_email_is_409(client, customer):
    customer("A", "a@example.com")
    other = customer("B", "b@example.com")
    response = client.patch(f"/api/customers/{other['_id']}", json={"email": "A@example.com"})
    assert response.status_code == 409
    assert Customer.objects.get(pk=other["_id"]).email == "b@example.com"


def test_delete_removes_customer_and_their_orders_only(client, customer):
    gone, kept = customer("A", "a@example.com"), customer("B", "b@example.com")
    for who in (gone, gone, kept):
        assert client.post("/api/orders", json={"customerId": who["_id"], "amount": 10}).status_code == 201
    response = client.delete(f"/api/customers/{gone['_id']}")
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/api/customers/{gone['_id']}").status_code == 404
    assert Order.objects.count() == 1
    assert client.delete(f"/api/customers/{gone['_id']}").status_code == 404


def test_the_list_shows_every_field_customer_out_has():
    """The list reads rows of exactly CustomerOut's fields (no document built): a field added to the
    schema but not to the rows would be missing from the list."""
    from controllers.customers import LIST_ROWS
    from schemas.customer import CustomerOut

    assert set(LIST_ROWS.names) == set(CustomerOut().fields) - {"id"}


def test_the_list_answers_as_reading_each_customer_does_whatever_was_stored(client):
    """Rows built from stored data answer what documents do: defaults for missing or null fields, a
    float for a whole-number spend, and no field the schema does not show."""
    from datetime import datetime

    Customer._get_collection().insert_many([
        {"name": "Old", "email": "old@example.com", "createdAt": datetime(2020, 1, 1),
         "updatedAt": datetime(2020, 1, 1)},
        {"name": "Nulls", "email": "nulls@example.com", "totalSpend": None, "numVisits": None, "tags": None,
         "subscribed": None, "createdAt": datetime(2021, 1, 1), "updatedAt": datetime(2021, 1, 1)},
        {"name": "Whole", "email": "whole@example.com", "totalSpend": 12, "numVisits": 3, "tags": ["vip"],
         "subscribed": False, "unsubscribedAt": datetime(2022, 2, 2), "creditedBy": ["o1", "o2"],
         "lastVisitDate": datetime(2022, 1, 1), "createdAt": datetime(2022, 1, 1), "updatedAt": datetime(2022, 1, 2)},
    ])
    listed = client.get("/api/customers?per_page=10").get_json()["items"]
    assert len(listed) == 3
    for item in listed:
        assert item == client.get(f"/api/customers/{item['_id']}").get_json()
    whole = next(item for item in listed if item["name"] == "Whole")
    assert whole["totalSpend"] == 12.0 and isinstance(whole["totalSpend"], float) and whole["subscribed"] is False
    old = next(item for item in listed if item["name"] == "Old")
    assert (old["totalSpend"], old["numVisits"], old["tags"], old["subscribed"]) == (0.0, 0, [], True)
