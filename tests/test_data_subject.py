"""Data-subject requests: export everything about one customer; erase them (admin only, audited)."""
import pytest

from models import AuditEvent, Campaign, Customer, Delivery, Order
from models.roles import MARKETER
from tests.checks import error_of
from tests.factories import make_user, signed_in


@pytest.fixture
def ada(client):
    """A customer with two orders and a delivery record, next to another customer."""
    ada = client.post("/api/customers", json={"name": "Ada", "email": "ada@example.com"}).get_json()
    bob = client.post("/api/customers", json={"name": "Bob", "email": "bob@example.com"}).get_json()
    for customer, amount in ((ada, 10), (ada, 20), (bob, 5)):
        assert client.post("/api/orders", json={"customerId": customer["_id"], "amount": amount}).status_code == 201
    campaign = Campaign(name="Spring", message="Hi {{name}}", rules={"op": "AND", "rules": []}).save()
    for customer in (ada, bob):
        Delivery(campaign_id=campaign.pk, customer_id=customer["_id"], email=customer["email"],
                 message=f"Hi {customer['name']}", status="FAILED", error=f"550 {customer['email']} unknown").save()
    return ada


def test_export_has_everything_about_the_customer_and_nothing_else(admin_client, ada):
    response = admin_client.get(f"/api/customers/{ada['_id']}/export")
    assert response.status_code == 200
    body = response.get_json()
    assert body["customer"]["email"] == "ada@example.com" and body["customer"]["totalSpend"] == 30
    assert sorted(o["amount"] for o in body["orders"]) == [10, 20]
    assert [d["email"] for d in body["deliveries"]] == ["ada@example.com"]
    assert body["exportedAt"].endswith("Z")
    event = AuditEvent.objects.get(action="customer.export")
    assert event.target_id == ada["_id"] and event.actor_email == "admin@example.com"


def test_erase_removes_the_customer_and_anonymises_their_deliveries(admin_client, ada):
    response = admin_client.delete(f"/api/customers/{ada['_id']}?erase=true")
    assert response.status_code == 204
    assert not Customer.objects(email="ada@example.com") and Order.objects.count() == 1
    mine = Delivery.objects.get(customer_id=ada["_id"])
    assert (mine.email, mine.message, mine.error, mine.status) == ("erased@invalid", "", None, "FAILED")
    other = Delivery.objects.get(email="bob@example.com")  # untouched
    assert other.message == "Hi Bob"
    assert Delivery.objects.count() == 2  # campaign statistics still add up
    event = AuditEvent.objects.get(action="customer.erase")
    assert event.target_id == ada["_id"] and "ada@example.com" not in str(event.to_mongo())
    assert admin_client.get(f"/api/customers/{ada['_id']}/export").status_code == 404


@pytest.mark.parametrize("path", ["/api/customers/{id}/export", "/api/customers/{id}?erase=true"])
def test_marketers_may_not_export_or_erase(app, ada, path):
    marketer = signed_in(app, make_user(MARKETER, email="m2@example.com"))
    method = "DELETE" if "erase" in path else "GET"
    response = marketer.open(path.format(id=ada["_id"]), method=method)
    assert response.status_code == 403
    assert Customer.objects(email="ada@example.com").count() == 1
    assert Delivery.objects.get(customer_id=ada["_id"]).email == "ada@example.com"


@pytest.mark.parametrize("query, status", [("?erase=maybe", 400), ("?erase=true&x=1", 400), ("?erase=false", 204)])
def test_erase_flag_is_validated(client, ada, query, status):
    response = client.delete(f"/api/customers/{ada['_id']}{query}")
    assert response.status_code == status, response.get_json()
    if status == 400:
        assert "erase" in error_of(response)["errors"] or "x" in error_of(response)["errors"]
        assert Customer.objects(email="ada@example.com").count() == 1
