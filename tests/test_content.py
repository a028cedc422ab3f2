"""Campaign content: subject, preheader, HTML and text bodies, fallbacks and every customer field,
templates, preview and test sends; the SMTP vendor's multipart message followed as a mail client would."""
import email
import re
from email import policy
from datetime import datetime

import pytest

import engine
from models import Campaign, Customer, Delivery, Template
from models.roles import MARKETER
from tests.checks import error_of
from tests.factories import make_user, seed_customers, signed_in
from tests.test_smtp import smtp_app, smtp_server  # noqa: F401 (fixtures)

HTML = ('<html><head><style>p {color: red}</style></head><body>'
        '<h1>Hello {{ firstName | default("there") }}</h1>'
        '<p>Spent {{totalSpend}} over {{numVisits}} visits, last on {{lastVisitDate}}; tags: {{tags}}.</p>'
        '<p><a href="https://shop.example/sale?who={{email}}">Sale</a> <a href="https://shop.example/new">New</a></p>'
        '<p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p></body></html>')


def _parsed(message):
    """A captured message as a mail client reads it (the modern email API)."""
    return email.message_from_bytes(message.as_bytes(), policy=policy.default)


def _create(client, **body):
    payload = {"name": "Spring sale", "rules": [], **body}
    response = client.post("/api/campaigns", json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def ada(app):
    seed_customers([{"name": "Ada King Lovelace", "email": "ada@shop.com", "totalSpend": 120.5, "numVisits": 3,
                     "tags": ["vip", "early"], "lastVisitDate": datetime(2026, 11, 30, 9, 0)}])
    return Customer.objects.get(email="ada@shop.com")


# --- content -------------------------------------------------------------------------------------------
def test_a_campaign_without_a_subject_uses_its_name_and_the_legacy_message_is_the_text(client):
    campaign = _create(client, message="Hi {{firstName}}")
    assert (campaign["subject"], campaign["text"], campaign["message"]) == ("Spring sale", "Hi {{firstName}}",
                                                                             "Hi {{firstName}}")
    assert campaign["tracking"] == {"opens": True, "clicks": True} and campaign["attributionDays"] == 5


def test_html_alone_gets_a_text_body_derived_from_it(client):
    campaign = _create(client, subject="Sale", html=HTML)
    assert campaign["html"] == HTML
    assert "Hello {{ firstName | default(\"there\") }}" in campaign["text"]
    assert "[Sale](https://shop.example/sale?who={{email}})" in campaign["text"]
    assert "color: red" not in campaign["text"] and "<p>" not in campaign["text"]
    assert campaign["links"] == ["https://shop.example/sale?who={{email}}", "https://shop.example/new"]


def test_the_preview_fills_every_customer_field_and_escapes_values_in_html(client, ada):
    campaign = _create(client, subject="For {{firstName}} {{lastName}}", preheader="Since {{customerSince}}",
                       html=HTML)
    preview = client.post(f"/api/campaigns/{campaign['_id']}/preview", json={"customerId": str(ada.pk)})
    assert preview.status_code == 200, preview.get_json()
    body = preview.get_json()
    assert body["subject"] == "For Ada King Lovelace"
    assert body["preheader"] == f"Since {ada.created_at:%Y-%m-%d}"
    assert "Hello Ada" in body["html"] and "Spent 120.5 over 3 visits, last on 2026-11-30; tags: vip, early." in body["html"]
    assert 'href="https://shop.example/sale?who=ada@shop.com"' in body["html"]  # untracked in a preview
    assert "/api/t/" not in body["html"] and "Hello Ada" in body["text"]
    assert "/api/unsubscribe/preview" in body["html"]
    Customer.objects(pk=ada.pk).update(set__name="<b>Ann & Co</b>")
    html = client.post(f"/api/campaigns/{campaign['_id']}/preview", json={"customerId": str(ada.pk)}).get_json()
    assert "Hello &lt;b&gt;Ann" in html["html"] and html["subject"] == "For <b>Ann & Co</b>"  # text stays text


def test_a_fallback_fills_an_empty_value(client):
    seed_customers([{"name": " ", "email": "blank@shop.com"}])
    campaign = _create(client, text='Dear {{ firstName | default("friend") }}, {{ tags | default("no tags") }}')
    blank = Customer.objects.get(email="blank@shop.com")
    body = client.post(f"/api/campaigns/{campaign['_id']}/preview", json={"customerId": str(blank.pk)}).get_json()
    assert body["text"] == "Dear friend, no tags"


BAD_CONTENT = [
    ({"subject": "Hi {{nickname}}", "text": "x"}, "subject"),
    ({"subject": "Two\nlines", "text": "x"}, "subject"),
    ({"preheader": "{{ name.__class__ }}", "text": "x"}, "preheader"),
    ({"html": "<p>{% for x in y %}{% endfor %}</p>"}, "html"),
    ({"text": "{{ name | upper }}"}, "text"),
    ({"text": "{{ name | default(email) }}"}, "text"),
    ({"text": '{{ name | default("a", true) }}'}, "text"),
    ({"html": '<a href="https://{{name}}.example/">x</a>'}, "html"),
    ({"html": '<a href="https://shop.example{{email}}">x</a>'}, "html"),
    ({"html": '<a href="http:///path">x</a>'}, "html"),
    ({"text": "x", "message": "y"}, "message"),
    ({}, "text"),
    ({"text": "x", "tracking": {"opens": "yes"}}, "tracking"),
    ({"text": "x", "tracking": {"bots": True}}, "tracking"),
    ({"text": "x", "replyTo": "not an address"}, "replyTo"),
    ({"text": "x", "fromName": "A\r\nBcc: x@y.z"}, "fromName"),
    ({"text": "x", "attributionDays": 91}, "attributionDays"),
    ({"text": "x", "attributionDays": -1}, "attributionDays"),
    ({"text": "x", "attributeOn": "open"}, "attributeOn"),
    ({"text": "x", "templateId": "nope"}, "templateId"),
]


@pytest.mark.parametrize("body, field", BAD_CONTENT)
def test_bad_content_is_a_400_naming_the_field(client, body, field):
    response = client.post("/api/campaigns", json={"name": "Bad", "rules": [], **body})
    assert response.status_code == 400, response.get_json()
    assert any(key.split(".")[0] == field for key in error_of(response)["errors"]), error_of(response)
    assert Campaign.objects.count() == 0


def test_an_unknown_template_is_a_404(client):
    response = client.post("/api/campaigns", json={"name": "C", "rules": [], "templateId": "64b7f0000000000000000000"})
    assert response.status_code == 404 and Campaign.objects.count() == 0


# --- templates -----------------------------------------------------------------------------------------
def test_templates_crud_and_a_campaign_made_from_one_keeps_its_copy(client):
    made = client.post("/api/templates", json={"name": "Newsletter", "subject": "News for {{firstName}}",
                                               "preheader": "This week", "html": HTML})
    assert made.status_code == 201, made.get_json()
    template = made.get_json()
    assert template["links"] == ["https://shop.example/sale?who={{email}}", "https://shop.example/new"]
    assert "[New](https://shop.example/new)" in template["text"]
    assert client.post("/api/templates", json={"name": "Newsletter", "subject": "x", "text": "y"}).status_code == 409
    assert client.get("/api/templates").get_json()["total"] == 1
    campaign = _create(client, templateId=template["_id"], subject="Own subject")
    assert (campaign["subject"], campaign["preheader"], campaign["html"]) == ("Own subject", "This week", HTML)
    assert campaign["templateId"] == template["_id"] and campaign["links"] == template["links"]

    changed = client.patch(f"/api/templates/{template['_id']}", json={"html": "<p>New {{name}}</p>"})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["text"] == template["text"] and changed.get_json()["links"] == []  # text kept
    derived = client.patch(f"/api/templates/{template['_id']}", json={"text": None}).get_json()
    assert derived["text"] == "New {{name}}\n"
    assert client.patch(f"/api/templates/{template['_id']}", json={"html": None, "text": None}).status_code == 400
    assert client.patch(f"/api/templates/{template['_id']}", json={"subject": "{{ x }}"}).status_code == 400
    assert client.get(f"/api/campaigns/{campaign['_id']}").get_json()["html"] == HTML  # the campaign kept its copy
    assert client.delete(f"/api/templates/{template['_id']}").status_code == 204
    assert client.get(f"/api/templates/{template['_id']}").status_code == 404
    assert client.delete(f"/api/templates/{template['_id']}").status_code == 404
    assert Template.objects.count() == 0


def test_a_campaign_giving_a_body_takes_neither_body_from_the_template(client):
    template = client.post("/api/templates", json={"name": "T", "subject": "S", "html": HTML}).get_json()
    campaign = _create(client, templateId=template["_id"], text="Plain only")
    assert (campaign["subject"], campaign["html"], campaign["text"]) == ("S", None, "Plain only")


@pytest.mark.parametrize("body", [{}, {"name": "T"}, {"name": "T", "subject": "S"}, {"name": "T", "text": "x"},
                                  {"name": "T", "subject": "S", "text": "{{ oops }}"}])
def test_bad_templates_are_400(client, body):
    assert client.post("/api/templates", json=body).status_code == 400
    assert Template.objects.count() == 0


def test_a_patch_that_would_leave_a_template_without_a_body(client):
    """Removing both bodies is bad input (400, and the document says so); ``text: null`` on a template
    without HTML is fine as a body but conflicts with the template as it is (409). Nothing changes."""
    only_text = client.post("/api/templates", json={"name": "T", "subject": "S", "text": "Hi"}).get_json()
    both = client.patch(f"/api/templates/{only_text['_id']}", json={"html": None, "text": None})
    assert both.status_code == 400 and "text" in both.get_json()["errors"]
    derive = client.patch(f"/api/templates/{only_text['_id']}", json={"text": None})
    assert derive.status_code == 409 and "text" in derive.get_json()["errors"]
    assert client.get(f"/api/templates/{only_text['_id']}").get_json()["text"] == "Hi"
    patch = client.get("/api/openapi.json").get_json()["components"]["schemas"]["TemplatePatch"]
    assert patch["not"]["required"] == ["html", "text"]


def test_a_viewer_reads_templates_but_cannot_write_them(client, viewer_client):
    client.post("/api/templates", json={"name": "T", "subject": "S", "text": "x"})
    assert viewer_client.get("/api/templates").status_code == 200
    assert viewer_client.post("/api/templates", json={"name": "U", "subject": "S", "text": "x"}).status_code == 403


# --- preview and test sends ----------------------------------------------------------------------------
@pytest.mark.parametrize("path, body, status", [
    ("/api/campaigns/{id}/preview", {"customerId": "64b7f0000000000000000000"}, 404),
    ("/api/campaigns/{id}/preview", {"customerId": "x"}, 400),
    ("/api/campaigns/{id}/preview", {}, 400),
    ("/api/campaigns/64b7f0000000000000000000/preview", {"customerId": "64b7f0000000000000000000"}, 404),
    ("/api/campaigns/{id}/test-send", {"emails": []}, 400),
    ("/api/campaigns/{id}/test-send", {"emails": [f"t{i}@x.example" for i in range(6)]}, 400),
    ("/api/campaigns/{id}/test-send", {"emails": ["not-an-address"]}, 400),
    ("/api/campaigns/{id}/test-send", {"emails": "t@x.example"}, 400),
    ("/api/campaigns/{id}/test-send", {"emails": ["t@x.example"], "customerId": "64b7f0000000000000000000"}, 404),
])
def test_preview_and_test_send_refuse_bad_input(client, path, body, status):
    campaign = _create(client, text="Hi")
    response = client.post(path.format(id=campaign["_id"]), json=body)
    assert response.status_code == status, response.get_json()


def test_a_test_send_is_marked_untracked_and_counted_nowhere(smtp_app, smtp_server):  # noqa: F811
    mailbox, _ = smtp_server
    app = smtp_app()
    seed_customers([{"name": "Ada King Lovelace", "email": "ada@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = _create(client, subject='Hello {{ firstName | default("there") }}', html=HTML, fromName="The Shop",
                       replyTo="help@shop.example")
    response = client.post(f"/api/campaigns/{campaign['_id']}/test-send",
                           json={"emails": ["ada@shop.com", "boss@shop.example", "ada@shop.com"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["results"] == [{"email": "ada@shop.com", "sent": True, "error": None},
                                              {"email": "boss@shop.example", "sent": True, "error": None}]
    by_rcpt = {rcpt[0]: _parsed(message) for rcpt, message in mailbox.messages}
    ada_copy, boss_copy = by_rcpt["ada@shop.com"], by_rcpt["boss@shop.example"]
    assert ada_copy["Subject"] == "[Test] Hello Ada" and boss_copy["Subject"] == "[Test] Hello there"
    assert ada_copy["X-CRM-Test"] == "yes" and ada_copy["From"] == "The Shop <news@crm.example>"
    html = ada_copy.get_body(("html",)).get_content()
    assert "/api/t/" not in html and "https://shop.example/new" in html
    assert Delivery.objects.count() == 0
    detail = client.get(f"/api/campaigns/{campaign['_id']}").get_json()
    assert detail["status"] == "draft" and detail["stats"]["handedOff"] == 0


def test_a_refused_test_address_is_reported_and_the_others_still_go(smtp_app, smtp_server):  # noqa: F811
    from tests.test_smtp import REFUSED

    mailbox, _ = smtp_server
    client = signed_in(smtp_app(), make_user(MARKETER, email="m@example.com"))
    campaign = _create(client, text="Hi")
    results = client.post(f"/api/campaigns/{campaign['_id']}/test-send",
                          json={"emails": [REFUSED, "ok@shop.example"]}).get_json()["results"]
    assert [(r["email"], r["sent"]) for r in results] == [(REFUSED, False), ("ok@shop.example", True)]
    assert results[0]["error"].startswith("smtp_550")
    assert [rcpt for rcpt, _ in mailbox.messages] == [["ok@shop.example"]]


# --- a real campaign through SMTP, followed as a mail client would -------------------------------------
def test_smtp_sends_multipart_with_pixel_and_tracked_links_and_the_report_counts_what_was_followed(
        smtp_app, smtp_server, campaign_action, clock):  # noqa: F811
    mailbox, _ = smtp_server
    app = smtp_app()
    seed_customers([{"name": "Ada Lovelace", "email": "ada@shop.com"}, {"name": "Bob", "email": "bob@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = _create(client, subject="Sale for {{firstName}}", preheader="Ends Sunday", html=HTML,
                       fromName="The Shop", replyTo="help@shop.example")
    assert campaign_action(client, campaign["_id"])["status"] == "completed"
    messages = {rcpt[0]: _parsed(message) for rcpt, message in mailbox.messages}
    ada = messages["ada@shop.com"]
    assert ada.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in ada.iter_parts()] == ["text/plain", "text/html"]
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and "/api/unsubscribe/" in ada["List-Unsubscribe"]
    assert ada["Reply-To"] == "help@shop.example" and ada["Subject"] == "Sale for Ada"
    text, html = ada.get_body(("plain",)).get_content(), ada.get_body(("html",)).get_content()
    assert "[Sale](https://shop.example/sale?who=ada@shop.com)" in text  # the text part is not rewritten
    assert re.search(r'<body><div style="display:none[^"]*">Ends Sunday</div>', html)
    links = re.findall(r'href="(http://localhost:5000/api/t/c/[^"]+)"', html)
    pixel = re.findall(r'src="(http://localhost:5000/api/t/o/[^"]+)"', html)
    assert len(links) == 2 and len(pixel) == 1
    assert re.search(r'href="http://localhost:5000/api/unsubscribe/[^"]+">Unsubscribe', html)

    clock.advance(minutes=30)
    reader = app.test_client()
    agent = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"}
    assert reader.get(pixel[0].removeprefix("http://localhost:5000"), headers=agent).status_code == 200
    assert reader.get(pixel[0].removeprefix("http://localhost:5000"), headers=agent).status_code == 200
    followed = reader.get(links[1].removeprefix("http://localhost:5000"), headers=agent)
    assert followed.status_code == 302 and followed.headers["Location"] == "https://shop.example/new"
    assert followed.headers["Referrer-Policy"] == "no-referrer" and "no-store" in followed.headers["Cache-Control"]

    report = client.get(f"/api/campaigns/{campaign['_id']}/report").get_json()
    assert report["opens"] == {"unique": 1, "uniqueHuman": 1, "total": 2}
    assert report["clicks"] == {"unique": 1, "uniqueHuman": 1, "total": 1}
    assert [(link["url"], link["total"], link["uniqueHuman"]) for link in report["links"]] == [
        ("https://shop.example/sale?who={{email}}", 0, 0), ("https://shop.example/new", 1, 1)]
    assert report["handedOff"] == 2
    record = Delivery.objects.get(email="ada@shop.com")
    assert [e.agent for e in record.events] == ["mobile", "mobile", "mobile"]


def test_a_customer_deleted_after_planning_is_not_sent_to(client, app, monkeypatch, campaign_action):
    seed_customers([{"name": "Ada", "email": "ada@shop.com"}, {"name": "Bob", "email": "bob@shop.com"}])
    from engine import planner

    original = planner.plan

    def plan_then_delete(campaign_id, deliver):
        def deliver_after_deleting(*args):
            Customer.objects(email="bob@shop.com").delete()
            deliver(*args)
        original(campaign_id, deliver_after_deleting)

    monkeypatch.setattr(planner, "plan", plan_then_delete)
    campaign = _create(client, text="Hi {{name}}")
    done = campaign_action(client, campaign["_id"])
    assert (done["stats"]["sent"], done["stats"]["failed"]) == (1, 1)
    assert Delivery.objects.get(email="bob@shop.com").error == "customer deleted"
    assert [m.to for m in engine.vendor(app).messages] == ["ada@shop.com"]


def test_campaigns_created_before_subjects_still_send_their_stored_message(client, app, campaign_action):
    seed_customers([{"name": "Ada", "email": "ada@shop.com"}])
    legacy = Campaign(name="Old", message="Hi {{name}}", rules={"op": "AND", "rules": []}).save()
    Campaign._get_collection().update_one({"_id": legacy.pk}, {"$unset": {"trackOpens": "", "trackClicks": "",
                                                                          "attributionDays": "", "links": ""}})
    assert campaign_action(client, str(legacy.pk))["status"] == "completed"
    message = engine.vendor(app).messages[-1]
    assert (message.subject, message.body, message.html) == ("Old", "Hi Ada", None)
