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
    assert (mine.email, mine.message, mine.error, mine.status) == ("erased@erased.invalid", "", None, "FAILED")
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


def test_erasure_reaches_kept_answers_and_import_errors(admin_client):
    """A replay of the create must not return the erased name and email for a day (nor create them
    again), and an import's row error naming the address goes too; others' copies stay."""
    from models import IdempotentResponse, ImportJob, ImportRowError

    created = admin_client.post("/api/customers", json={"name": "Zed Erased", "email": "zed@example.com"},
                                headers={"Idempotency-Key": "zed-1"})
    other = admin_client.post("/api/customers", json={"name": "Kept", "email": "kept@example.com"},
                              headers={"Idempotency-Key": "kept-1"})
    job = ImportJob(type="orders", filename="o.csv").save()
    ImportRowError(job_id=job.pk, row=2, field="customerEmail", message="No customer has the email zed@example.com.").save()
    ImportRowError(job_id=job.pk, row=3, field="customerEmail", message="No customer has the email kept@example.com.").save()
    assert admin_client.delete(f"/api/customers/{created.get_json()['_id']}?erase=true").status_code == 204

    replay = admin_client.post("/api/customers", json={"name": "Zed Erased", "email": "zed@example.com"},
                               headers={"Idempotency-Key": "zed-1"})
    assert replay.status_code == 410 and replay.headers["Idempotent-Replayed"] == "true"
    documented = admin_client.get("/api/openapi.json").get_json()["paths"]["/api/customers"]["post"]
    assert "410" in documented["responses"], "the 410 a replay can answer is in the contract"
    assert "Zed" not in replay.get_data(as_text=True) and "zed@" not in replay.get_data(as_text=True)
    assert Customer.objects(email="zed@example.com").count() == 0
    assert not IdempotentResponse.objects(__raw__={"body": {"$regex": "zed@example.com"}}).count()
    kept = admin_client.post("/api/customers", json={"name": "Kept", "email": "kept@example.com"},
                             headers={"Idempotency-Key": "kept-1"})
    assert (kept.status_code, kept.get_json()) == (other.status_code, other.get_json())
    assert [e.row for e in ImportRowError.objects(job_id=job.pk)] == [3]
