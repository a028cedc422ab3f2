"""Custom attributes: declared definitions, values checked on every customer write path (single,
patch, upsert, bulk, CSV import), exported as columns, usable in rules and in messages; and each
customer's IANA time zone and locale."""
import csv
import io

import pytest

import engine
from models import Customer
from tests.checks import error_of
from tests.test_imports import finished, row_errors, upload

PLAN = {"key": "plan", "type": "string", "description": "The customer's subscription plan"}
DECLARED = [PLAN, {"key": "seats", "type": "number"}, {"key": "birthDate", "type": "date"},
            {"key": "beta", "type": "boolean"}, {"key": "interests", "type": "list"}]


@pytest.fixture
def declared(client):
    for definition in DECLARED:
        response = client.post("/api/attributes", json=definition)
        assert response.status_code == 201, response.get_json()
    return client


def _customer(client, **fields):
    response = client.post("/api/customers", json={"name": "Ann Lee", "email": "ann@shop.com", **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# --- definitions -----------------------------------------------------------------------------------
def test_a_declared_attribute_is_listed_read_described_and_its_key_is_taken_once(client):
    created = client.post("/api/attributes", json=PLAN)
    assert created.status_code == 201
    body = created.get_json()
    assert {k: body[k] for k in ("key", "type", "description")} == PLAN and body["_id"]
    again = client.post("/api/attributes", json={**PLAN, "type": "number"})
    assert again.status_code == 409 and error_of(again)["errors"] == {"key": ["Already declared."]}
    assert [a["key"] for a in client.get("/api/attributes").get_json()["items"]] == ["plan"]
    patched = client.patch("/api/attributes/plan", json={"description": "Billing plan"})
    assert patched.status_code == 200 and patched.get_json()["description"] == "Billing plan"
    assert patched.get_json()["type"] == "string"
    assert client.patch("/api/attributes/plan", json={"type": "number"}).status_code == 400  # a type is fixed
    assert client.get("/api/attributes/nope").status_code == 404
    assert client.patch("/api/attributes/nope", json={"description": "x"}).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"key": "Plan", "type": "string"}, "key"),            # must start lower-case
    ({"key": "a.b", "type": "string"}, "key"),             # a dot would be a path
    ({"key": "$where", "type": "string"}, "key"),          # never an operator
    ({"key": "x" * 41, "type": "string"}, "key"),
    ({"key": "plan", "type": "text"}, "type"),
    ({"key": "plan"}, "type"),
    ({"key": "plan", "type": "string", "description": "two\nlines"}, "description"),
    ({"key": "plan", "type": "string", "extra": 1}, "extra"),
])
def test_bad_definitions_are_refused_naming_the_field(client, body, field):
    response = client.post("/api/attributes", json=body)
    assert response.status_code == 400 and field in error_of(response)["errors"]
    assert client.get("/api/attributes").get_json()["total"] == 0


def test_only_an_admin_deletes_an_attribute_and_that_erases_every_customer_value(declared, admin_client):
    ann = _customer(declared, attributes={"plan": "pro", "seats": 3})
    assert declared.delete("/api/attributes/plan").status_code == 403  # a marketer may not
    assert admin_client.delete("/api/attributes/plan").status_code == 204
    assert declared.get(f"/api/customers/{ann['_id']}").get_json()["attributes"] == {"seats": 3}
    assert "plan" not in Customer.objects.get(email="ann@shop.com").attributes
    assert admin_client.delete("/api/attributes/plan").status_code == 404
    # undeclared now: a value for it is refused
    refused = declared.patch(f"/api/customers/{ann['_id']}", json={"attributes": {"plan": "pro"}})
    assert refused.status_code == 400 and "attributes.plan" in error_of(refused)["errors"]


def test_an_attribute_used_by_rules_cannot_be_deleted_until_they_change(declared, admin_client):
    nested = [{"op": "OR", "rules": [{"field": "name", "operator": "contains", "value": "a"},
                                     {"op": "AND", "rules": [{"field": "attributes.plan", "operator": "=",
                                                              "value": "pro"}]}]}]
    segment = declared.post("/api/segments", json={"name": "Pro", "rules": nested})
    assert segment.status_code == 201, segment.get_json()
    refused = admin_client.delete("/api/attributes/plan")
    assert refused.status_code == 409
    assert error_of(refused)["errors"] == {"segments": [f"Rules of segment {segment.get_json()['_id']} use it."]}
    assert declared.get("/api/attributes/plan").status_code == 200
    assert declared.delete(f"/api/segments/{segment.get_json()['_id']}").status_code == 204
    campaign = declared.post("/api/campaigns", json={"name": "Pro news", "rules": nested, "text": "News"})
    assert campaign.status_code == 201
    assert admin_client.delete("/api/attributes/plan").status_code == 409  # a draft campaign's rules
    assert declared.post(f"/api/campaigns/{campaign.get_json()['_id']}/cancel").status_code == 200
    assert admin_client.delete("/api/attributes/plan").status_code == 204


def test_at_most_one_hundred_attributes(client, monkeypatch):
    monkeypatch.setattr("controllers.attributes.MAX_ATTRIBUTES", 2)
    assert client.post("/api/attributes", json={"key": "a", "type": "string"}).status_code == 201
    assert client.post("/api/attributes", json={"key": "b", "type": "string"}).status_code == 201
    assert client.post("/api/attributes", json={"key": "c", "type": "string"}).status_code == 409


# --- values on every write path ----------------------------------------------------------------------
def test_values_are_stored_typed_and_shown(declared):
    ann = _customer(declared, attributes={"plan": " pro ", "seats": 12, "birthDate": "1990-05-17", "beta": True,
                                          "interests": ["shoes", "bags", "shoes"]},
                    timezone="america/new_york", locale="pt_br")
    assert ann["attributes"] == {"beta": True, "birthDate": "1990-05-17T00:00:00.000Z", "interests": ["shoes", "bags"],
                                 "plan": "pro", "seats": 12}
    assert ann["timezone"] == "America/New_York" and ann["locale"] == "pt-BR"
    stored = Customer._get_collection().find_one({"email": "ann@shop.com"})
    assert stored["attributes"]["birthDate"].year == 1990 and stored["attributes"]["seats"] == 12
    listed = declared.get("/api/customers").get_json()["items"][0]
    assert listed["attributes"] == ann["attributes"] and listed["timezone"] == "America/New_York"
    plain = declared.post("/api/customers", json={"name": "Bo", "email": "bo@shop.com"}).get_json()
    assert plain["attributes"] == {} and plain["timezone"] is None and plain["locale"] is None


@pytest.mark.parametrize("attributes, path, message", [
    ({"unknown": 1}, "attributes.unknown", "Not a declared attribute"),
    ({"seats": "12"}, "attributes.seats", "Must be a number."),
    ({"seats": True}, "attributes.seats", "Must be a number."),
    ({"seats": 1e16}, "attributes.seats", "finite number"),
    ({"plan": 5}, "attributes.plan", "Must be text."),
    ({"plan": "x" * 501}, "attributes.plan", "At most 500"),
    ({"birthDate": "17/05/1990"}, "attributes.birthDate", "Must be a date"),
    ({"beta": "yes"}, "attributes.beta", "Must be true or false."),
    ({"interests": "shoes"}, "attributes.interests", "Must be a list"),
    ({"interests": ["ok", ""]}, "attributes.interests", "may not be empty"),
    ({"interests": [1]}, "attributes.interests", "Must be text."),
    ({"interests": ["x"] * 101}, "attributes.interests", "At most 100 items"),
])
def test_bad_values_are_refused_naming_the_attribute_and_nothing_is_stored(declared, attributes, path, message):
    response = declared.post("/api/customers", json={"name": "Ann", "email": "ann@shop.com", "attributes": attributes})
    assert response.status_code == 400, response.get_json()
    errors = error_of(response)["errors"]
    assert list(errors) == [path] and message in errors[path][0]
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("field, value", [("timezone", "Mars/Olympus"), ("timezone", "EST5EDT!"), ("timezone", 5),
                                          ("locale", "english"), ("locale", "e"), ("locale", "en-")])
def test_a_time_zone_or_locale_that_is_not_one_is_refused(client, field, value):
    response = client.post("/api/customers", json={"name": "Ann", "email": "ann@shop.com", field: value})
    assert response.status_code == 400 and field in error_of(response)["errors"]


def test_patch_sets_and_removes_attributes_key_by_key(declared):
    ann = _customer(declared, attributes={"plan": "pro", "seats": 3}, timezone="Europe/Paris")
    url = f"/api/customers/{ann['_id']}"
    patched = declared.patch(url, json={"attributes": {"seats": None, "beta": False}, "timezone": None,
                                        "locale": "fr-FR"})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["attributes"] == {"plan": "pro", "beta": False}  # plan untouched
    assert patched.get_json()["timezone"] is None and patched.get_json()["locale"] == "fr-FR"
    assert "timezone" not in Customer._get_collection().find_one({"email": "ann@shop.com"})


def test_an_attribute_named_like_an_operator_is_stored_under_its_name(client):
    for key in ("in", "exists", "ne", "set"):
        assert client.post("/api/attributes", json={"key": key, "type": "number"}).status_code == 201
    ann = _customer(client)
    patched = client.patch(f"/api/customers/{ann['_id']}", json={"attributes": {"in": 1, "exists": 2, "ne": 3}})
    assert patched.status_code == 200, patched.get_json()
    stored = Customer._get_collection().find_one({"email": "ann@shop.com"})
    assert stored["attributes"] == {"in": 1, "exists": 2, "ne": 3}


def test_upsert_merges_attributes_and_replace_replaces_them(declared):
    url = "/api/customers/by-email/ann@shop.com"
    created = declared.put(url, json={"name": "Ann", "attributes": {"plan": "pro", "seats": 2},
                                      "timezone": "Asia/Kolkata"})
    assert created.status_code == 201, created.get_json()
    merged = declared.put(url, json={"attributes": {"seats": None, "beta": True}})
    assert merged.get_json()["attributes"] == {"plan": "pro", "beta": True}
    assert merged.get_json()["timezone"] == "Asia/Kolkata"
    replaced = declared.put(url + "?mode=replace", json={"attributes": {"seats": 9}})
    assert replaced.get_json()["attributes"] == {"seats": 9}


def test_bulk_items_are_checked_each_and_the_same_values_again_change_nothing(declared):
    items = [{"name": "Ann", "email": "ann@shop.com", "attributes": {"plan": "pro", "birthDate": "1990-05-17"},
              "locale": "en-GB"},
             {"name": "Bo", "email": "bo@shop.com", "attributes": {"seats": "many"}},
             {"name": "Cy", "email": "cy@shop.com", "attributes": {"nope": 1}}]
    first = declared.post("/api/customers/bulk", json=items).get_json()
    assert first["counts"]["created"] == 1 and first["counts"]["failed"] == 2
    assert first["items"][1]["errors"] == {"attributes.seats": ["Must be a number."]}
    assert "attributes.nope" in first["items"][2]["errors"]
    again = declared.post("/api/customers/bulk", json=items[:1]).get_json()
    assert again["items"][0]["status"] == "unchanged"
    changed = declared.post("/api/customers/bulk", json=[{**items[0], "attributes": {"plan": "team"}}]).get_json()
    assert changed["items"][0]["status"] == "updated"
    ann = Customer.objects.get(email="ann@shop.com")
    assert ann.attributes["plan"] == "team" and ann.attributes["birthDate"].year == 1990


def test_a_csv_import_fills_attributes_from_mapped_columns_typed_and_checked(declared):
    text = ("Name,Email,Plan,Seats,Beta,Interests,attributes.birthDate,Zone,locale\n"
            "Ann,ann@shop.com,pro,12,yes,shoes|bags,1990-05-17,Europe/Paris,fr_fr\n"
            "Bo,bo@shop.com,free,lots,no,,,,\n"
            "Cy,cy@shop.com,,3.5,maybe,,,Nowhere/City,\n")
    mapping = {"Plan": "attributes.plan", "Seats": "attributes.seats", "Beta": "attributes.beta",
               "Interests": "attributes.interests", "Zone": "timezone"}
    job = finished(declared, upload(declared, text, mapping=mapping))
    assert job["counts"]["inserted"] == 1 and job["counts"]["failed"] == 2, job
    assert row_errors(declared, job) == [
        (3, "attributes.seats", "Must be a number."),
        (4, "attributes.beta", "Must be true or false."),
        (4, "timezone", "Not a known IANA time zone name (e.g. Europe/Paris, America/New_York, UTC)."),
    ]
    ann = Customer.objects.get(email="ann@shop.com")
    assert ann.attributes == {"plan": "pro", "seats": 12, "beta": True, "interests": ["shoes", "bags"],
                              "birthDate": ann.attributes["birthDate"]}
    assert ann.attributes["birthDate"].isoformat() == "1990-05-17T00:00:00"
    assert (ann.timezone, ann.locale) == ("Europe/Paris", "fr-FR")


def test_a_column_mapped_to_an_undeclared_attribute_refuses_the_upload(declared):
    response = upload(declared, "name,email,Tier\nAnn,ann@shop.com,gold\n", mapping={"Tier": "attributes.tier"})
    assert response.status_code == 400
    assert "attributes.tier" in error_of(response)["errors"]["mapping"][0]


def test_the_export_has_a_column_per_attribute_that_an_import_reads_back(declared, admin_client):
    _customer(declared, attributes={"plan": "=pro", "seats": 2.5, "birthDate": "1990-05-17", "beta": False,
                                    "interests": ["a", "b"]}, timezone="UTC", locale="en")
    exported = declared.get("/api/customers/export.csv")
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert rows[0]["attributes.plan"] == "'=pro" and rows[0]["attributes.seats"] == "2.5"
    assert rows[0]["attributes.birthDate"] == "1990-05-17T00:00:00.000Z" and rows[0]["attributes.beta"] == "false"
    assert rows[0]["attributes.interests"] == "a|b" and (rows[0]["timezone"], rows[0]["locale"]) == ("UTC", "en")
    Customer.objects.delete()
    skip = {name: None for name in ("id", "unsubscribedAt", "totalSpend", "numVisits", "lastVisitDate", "createdAt",
                                    "attributes.plan")}  # a formula-guarded cell is not the value
    job = finished(declared, upload(declared, exported.get_data(as_text=True), mapping=skip))
    assert job["counts"]["inserted"] == 1, (job, row_errors(declared, job))
    ann = Customer.objects.get(email="ann@shop.com")
    assert ann.attributes["seats"] == 2.5 and ann.attributes["beta"] is False
    assert ann.attributes["interests"] == ["a", "b"]
    assert ann.attributes["birthDate"].year == 1990 and ann.timezone == "UTC"


# --- rules ----------------------------------------------------------------------------------------
@pytest.fixture
def people(declared):
    for name, email, attributes in [
        ("Ann", "ann@shop.com", {"plan": "Pro", "seats": 12, "beta": True, "interests": ["shoes"],
                                 "birthDate": "1990-05-17"}),
        ("Bo", "bo@shop.com", {"plan": "free", "seats": 1, "beta": False, "interests": ["bags", "shoes"]}),
        ("Cy", "cy@shop.com", {}),
    ]:
        assert declared.post("/api/customers", json={"name": name, "email": email,
                                                     "attributes": attributes}).status_code == 201
    return declared


def _selected(client, *rules, op="AND"):
    response = client.post("/api/segments/preview", json={"rules": list(rules), "logicalOperator": op})
    assert response.status_code == 200, response.get_json()
    return sorted(c["name"] for c in response.get_json()["sample"])


@pytest.mark.parametrize("rule, names", [
    ({"field": "attributes.plan", "operator": "=", "value": "pro"}, ["Ann"]),        # text: any case
    ({"field": "attributes.plan", "operator": "!=", "value": "pro"}, ["Bo", "Cy"]),  # a missing value too
    ({"field": "attributes.seats", "operator": ">=", "value": "2"}, ["Ann"]),
    ({"field": "attributes.seats", "operator": "<", "value": 5}, ["Bo"]),            # never a missing value
    ({"field": "attributes.beta", "operator": "=", "value": "true"}, ["Ann"]),
    ({"field": "attributes.beta", "operator": "!=", "value": True}, ["Bo", "Cy"]),
    ({"field": "attributes.interests", "operator": "contains", "value": "bags"}, ["Bo"]),
    ({"field": "attributes.interests", "operator": "in", "value": "bags,shoes"}, ["Ann", "Bo"]),
    ({"field": "attributes.interests", "operator": "notIn", "value": ["bags"]}, ["Ann", "Cy"]),
    ({"field": "attributes.birthDate", "operator": "=", "value": "1990-05-17"}, ["Ann"]),
    ({"field": "attributes.birthDate", "operator": "exists", "value": "false"}, ["Bo", "Cy"]),
])
def test_rules_select_by_attribute_values_in_the_database(people, rule, names):
    assert _selected(people, rule) == names


@pytest.mark.parametrize("rule, path", [
    ({"field": "attributes.tier", "operator": "=", "value": "x"}, "rules[0].field"),
    ({"field": "attributes.seats", "operator": "contains", "value": "x"}, "rules[0].operator"),
    ({"field": "attributes.seats", "operator": ">", "value": "lots"}, "rules[0].value"),
    ({"field": "attributes.beta", "operator": "=", "value": "maybe"}, "rules[0].value"),
    ({"field": "attributes.$where", "operator": "=", "value": "x"}, "rules[0].field"),
])
def test_rules_on_attributes_that_cannot_be_used_are_400(people, rule, path):
    response = people.post("/api/segments/preview", json={"rules": [rule]})
    assert response.status_code == 400 and path in error_of(response)["errors"]


def test_a_campaign_reaches_the_attribute_audience_and_personalises_with_attributes(people):
    campaign = people.post("/api/campaigns", json={
        "name": "Seats", "rules": [{"field": "attributes.seats", "operator": ">", "value": "0"}],
        "subject": "{{ attributes.plan | default(\"Your\") }} plan",
        "text": "Hi {{firstName}}, {{attributes.seats}} seats, interests: {{ attributes.interests }}."})
    assert campaign.status_code == 201, campaign.get_json()
    ident = campaign.get_json()["_id"]
    ann = Customer.objects.get(email="ann@shop.com")
    preview = people.post(f"/api/campaigns/{ident}/preview", json={"customerId": str(ann.pk)}).get_json()
    assert preview["subject"] == "Pro plan" and preview["text"].startswith("Hi Ann, 12 seats, interests: shoes.")
    cy = Customer.objects.get(email="cy@shop.com")
    empty = people.post(f"/api/campaigns/{ident}/preview", json={"customerId": str(cy.pk)}).get_json()
    assert empty["subject"] == "Your plan" and empty["text"].startswith("Hi Cy,  seats, interests: .")
    assert people.post(f"/api/campaigns/{ident}/send").status_code in (200, 202)
    assert engine.wait_idle(people.application, timeout=60)
    report = people.get(f"/api/campaigns/{ident}").get_json()
    assert report["status"] == "completed" and report["audienceSize"] == 2


@pytest.mark.parametrize("subject, message", [
    ("{{ attributes.tier }}", "Not declared attribute(s): {{attributes.tier}}"),
    ("{{ attributes }}", "Name the attribute"),
    ("{{ attributes.__class__ }}", "Only a custom attribute is written with a dot"),
    ("{{ name.upper }}", "Only a custom attribute is written with a dot"),
])
def test_message_placeholders_name_declared_attributes_only(declared, subject, message):
    response = declared.post("/api/campaigns", json={"name": "X", "rules": [], "subject": subject, "text": "Hi"})
    assert response.status_code == 400 and message in error_of(response)["errors"]["subject"][0]


def test_a_segment_whose_attribute_vanished_in_a_race_is_a_409_not_a_500(declared, app):
    from models import AttributeDefinition, Segment

    segment = declared.post("/api/segments", json={"name": "Pro", "rules": [
        {"field": "attributes.plan", "operator": "=", "value": "pro"}]}).get_json()
    AttributeDefinition.objects(key="plan").delete()  # as a concurrent delete could leave it
    assert Segment.objects.count() == 1
    for response in (declared.get(f"/api/segments/{segment['_id']}"),
                     declared.post(f"/api/segments/{segment['_id']}/preview"),
                     declared.get(f"/api/customers/export.csv?segmentId={segment['_id']}")):
        assert response.status_code == 409, response.get_data(as_text=True)
        assert "rules[0].field" in error_of(response)["errors"]
