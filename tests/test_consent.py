"""Consent: the suppression list, unsubscribed customers skipped by every campaign and counted, the
signed one-click unsubscribe link, and the CSV export (streamed, formula-safe, audited)."""
import csv
import io
import re

import pytest

import engine

from models import AuditEvent, Customer, Delivery, Suppression
from tests.factories import seed_customers


def test_suppressions_are_added_listed_and_removed(client, viewer_client):
    added = client.post("/api/suppressions", json={"email": " Gone@Shop.com ", "note": "asked by phone"})
    assert added.status_code == 201 and added.get_json()["email"] == "gone@shop.com"
    assert added.get_json()["reason"] == "manual"
    assert client.post("/api/suppressions", json={"email": "gone@shop.com"}).status_code == 409
    assert client.post("/api/suppressions", json={"email": "nope"}).status_code == 400
    assert client.post("/api/suppressions", json={"email": "a@b.co", "reason": "whim"}).status_code == 400
    listing = viewer_client.get("/api/suppressions?email=GONE@shop.com").get_json()
    assert [s["email"] for s in listing["items"]] == ["gone@shop.com"] and listing["total"] == 1
    assert viewer_client.delete("/api/suppressions/gone@shop.com").status_code == 403
    assert client.delete("/api/suppressions/gone@shop.com").status_code == 204
    assert client.delete("/api/suppressions/gone@shop.com").status_code == 404
    assert Suppression.objects.count() == 0


def test_a_suppressed_address_is_matched_whatever_its_case(client, campaign_action):
    seed_customers([{"name": "Cat", "email": "Cat@Shop.com"}, {"name": "Dan", "email": "dan@shop.com"}])
    client.post("/api/suppressions", json={"email": "CAT@shop.com"})
    campaign = client.post("/api/campaigns", json={"name": "Hello", "message": "Hi", "rules": []}).get_json()
    done = campaign_action(client, campaign["_id"])
    assert [d.email for d in Delivery.objects] == ["dan@shop.com"] and done["stats"]["suppressed"] == 1


def test_campaigns_skip_unsubscribed_and_suppressed_customers_and_count_them(client, campaign_action):
    client.post("/api/customers/bulk", json=[
        {"name": "Ann", "email": "ann@shop.com"}, {"name": "Bob", "email": "bob@shop.com", "subscribed": False},
        {"name": "Cat", "email": "cat@shop.com"}, {"name": "Dan", "email": "dan@shop.com"}])
    client.post("/api/suppressions", json={"email": "cat@shop.com"})
    campaign = client.post("/api/campaigns", json={"name": "Hello", "message": "Hi {{name}}", "rules": []}).get_json()
    done = campaign_action(client, campaign["_id"])
    assert done["status"] == "completed"
    assert done["stats"]["suppressed"] == 2 and done["stats"]["total"] == 2
    assert done["audienceSize"] == 4
    assert sorted(d.email for d in Delivery.objects) == ["ann@shop.com", "dan@shop.com"]


def test_the_unsubscribe_link_confirms_on_get_and_unsubscribes_on_post(app, client, anon, campaign_action):
    client.post("/api/customers", json={"name": "Ann", "email": "ann@shop.com"})
    campaign = client.post("/api/campaigns", json={
        "name": "News", "message": "Hi {{firstName}}. Stop: {{unsubscribeUrl}}", "rules": []}).get_json()
    campaign_action(client, campaign["_id"])
    message = next(m.body for m in engine.vendor(app).messages if m.to == "ann@shop.com")
    link = re.search(r"(http://localhost:\d+)(/api/unsubscribe/\S+)", message)
    assert link, message
    path = link.group(2)

    page = anon.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert f'action="{path}"' in page.get_data(as_text=True)
    assert Customer.objects.get(email="ann@shop.com").subscribed is True  # a GET (a link scanner) changes nothing

    done = anon.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert done.status_code == 200 and done.get_json() == {
        "unsubscribed": True, "message": "You are unsubscribed and will no longer receive our campaigns."}
    ann = Customer.objects.get(email="ann@shop.com")
    assert ann.subscribed is False and ann.unsubscribed_at is not None
    event = AuditEvent.objects.get(action="customer.unsubscribe")  # by the link: no actor, the customer named
    assert (event.via, event.target_id, event.actor_id, event.details) == ("link", str(ann.pk), None, {"oneClick": True})
    assert Suppression.objects.get(email="ann@shop.com").reason == "unsubscribed"
    assert anon.post(path).status_code == 200  # again: nothing new
    assert Suppression.objects.count() == 1

    token = path.rsplit("/", 1)[1]
    for forged in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x", token + "x"):
        assert anon.post(f"/api/unsubscribe/{forged}").status_code == 404
        assert anon.get(f"/api/unsubscribe/{forged}").get_json()["error"].startswith("This unsubscribe link")
        html = anon.get(f"/api/unsubscribe/{forged}", headers={"Accept": "text/html"})
        assert html.status_code == 404 and "Link not valid" in html.get_data(as_text=True)


def test_a_link_signed_with_another_secret_is_refused(app, client, anon):
    from itsdangerous import URLSafeSerializer

    from services import unsubscribe

    client.post("/api/customers", json={"name": "Ann", "email": "ann@shop.com"})
    ann = Customer.objects.get(email="ann@shop.com")
    forged = URLSafeSerializer("another-secret", salt=unsubscribe.SALT).dumps([str(ann.pk), None])
    assert anon.post(f"/api/unsubscribe/{forged}").status_code == 404
    with app.app_context():
        genuine = unsubscribe.token(ann.pk)
    assert genuine != forged and anon.post(f"/api/unsubscribe/{genuine}").status_code == 200
    assert Customer.objects.get(pk=ann.pk).subscribed is False


# --- export ---------------------------------------------------------------------------------------

def _rows(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_the_export_streams_csv_with_formulas_escaped_and_is_audited(client, viewer_client):
    client.post("/api/customers/bulk", json=[
        {"name": "=HYPERLINK(\"http://evil\")", "email": "a@shop.com", "tags": ["+1", "-x"]},
        {"name": "@SUM(A1)", "email": "b@shop.com", "subscribed": False},
        {"name": "Plain Name", "email": "d@shop.com"},
    ])
    seed_customers([{"name": "\tTabbed", "email": "c@shop.com"}])  # through the model: it does not trim, as the API does
    response = client.get("/api/customers/export.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    # personal data: no cache keeps it, and no shared cache answers one caller with another's file
    assert response.headers["Cache-Control"] == "no-store"
    assert {"Authorization", "Cookie"} <= set(response.vary)
    rows = _rows(response)
    assert rows[0][:5] == ["id", "name", "email", "tags", "subscribed"]
    by_email = {row[2]: row for row in rows[1:]}
    assert by_email["a@shop.com"][1] == "'=HYPERLINK(\"http://evil\")" and by_email["a@shop.com"][3] == "'+1|-x"
    assert by_email["b@shop.com"][1] == "'@SUM(A1)" and by_email["b@shop.com"][4] == "false"
    assert by_email["c@shop.com"][1] == "'\tTabbed" and by_email["d@shop.com"][1] == "Plain Name"

    only_off = _rows(client.get("/api/customers/export.csv?subscribed=false"))
    assert [row[2] for row in only_off[1:]] == ["b@shop.com"]
    assert viewer_client.get("/api/customers/export.csv").status_code == 403
    events = AuditEvent.objects(action="customer.export_csv")
    assert events.count() == 2 and events.order_by("-id").first().details == {"subscribed": "False"}


def test_the_export_of_a_segment_and_its_bad_queries(client):
    client.post("/api/customers/bulk", json=[{"name": f"P{i}", "email": f"p{i}@shop.com"} for i in range(3)])
    first = Customer.objects.get(email="p0@shop.com")
    client.post("/api/orders", json={"customerId": str(first.pk), "amount": 500})
    segment = client.post("/api/segments", json={
        "name": "Big", "rules": [{"field": "totalSpend", "operator": ">", "value": 100}]}).get_json()
    rows = _rows(client.get(f"/api/customers/export.csv?segmentId={segment['_id']}"))
    assert [row[2] for row in rows[1:]] == ["p0@shop.com"] and rows[1][6] == "500.0"
    assert client.get("/api/customers/export.csv?segmentId=" + "0" * 24).status_code == 404
    for query in ("segmentId=zzz", "subscribed=maybe", "sort=name", "q="):
        response = client.get(f"/api/customers/export.csv?{query}")
        assert response.status_code == 400 and response.is_json, query


@pytest.mark.parametrize("count", [0, 1201])
def test_the_export_holds_every_customer_once(client, count):
    if count:
        seed_customers([{"name": f"N{i}", "email": f"n{i}@x.com"} for i in range(count)])
    rows = _rows(client.get("/api/customers/export.csv"))
    assert len(rows) == count + 1 and len({row[2] for row in rows[1:]}) == count


@pytest.mark.parametrize("name", ["\uff1dHYPERLINK(\"http://evil\")", "\uff0b1", "\uff0d1", "\uff20SUM(A1)",
                                  "\u200b=1+1", "\ufeff+SUM(A1)", "\u2060\u200b@SUM(A1)", "\u200d-1"])
def test_formulas_behind_fullwidth_signs_or_invisible_characters_are_escaped_too(client, name):
    seed_customers([{"name": name, "email": "x@shop.com"}, {"name": "\u200bPlain", "email": "y@shop.com"}])
    rows = {row[2]: row for row in _rows(client.get("/api/customers/export.csv"))[1:]}
    assert rows["x@shop.com"][1] == "'" + name
    assert rows["y@shop.com"][1] == "\u200bPlain"  # invisible, then text: left as it is
