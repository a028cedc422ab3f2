"""Reports: every figure from one function, equal to the delivery records and their events; the CSV
equals the JSON; the campaign list agrees; a period report has one row per campaign."""
import csv
import io
import random
import re

import pytest

import engine
from models import Campaign, Delivery
from tests.factories import seed_customers
from tests.test_tracking import HTML, PERSON, SCANNER

PEOPLE = 40


@pytest.fixture
def measured(client, app, campaign_action, clock):
    """A campaign to 40 people, who open and click at random (some through scanners), over three days."""
    seed_customers([{"name": f"Person {i}", "email": f"p{i}@shop.com"} for i in range(PEOPLE)])
    created = client.post("/api/campaigns", json={"name": "Report", "html": HTML, "rules": []}).get_json()
    campaign_action(client, created["_id"])
    rng = random.Random(7)
    reader = app.test_client()
    for hours in (0.0001, 1, 5, 30, 60):  # right after sending (scanners), then people over three days
        clock.advance(hours=hours)
        for message in list(engine.vendor(app).messages):
            urls = re.findall(r'(?:href|src)="http://localhost:5000(/api/t/[^"]+)"', message.html)
            agent = SCANNER if hours < 1 else PERSON
            if rng.random() < 0.5:
                reader.get(urls[-1], headers={"User-Agent": agent})
            if rng.random() < 0.3:
                reader.get(urls[rng.randrange(2)], headers={"User-Agent": agent})
    return created


def _expected(campaign_id):
    records = list(Delivery.objects(campaign_id=campaign_id))
    events = [(r.pk, e) for r in records for e in r.events]

    def engagement(kind):
        mine = [(pk, e) for pk, e in events if e.kind == kind]
        return {"unique": len({pk for pk, _ in mine}), "uniqueHuman": len({pk for pk, e in mine if not e.bot}),
                "total": len(mine)}

    return {"opens": engagement("open"), "clicks": engagement("click"),
            "sent": sum(r.status == "SENT" for r in records), "handedOff": sum(r.sent_at is not None for r in records),
            "links": [sum(1 for _, e in events if e.kind == "click" and e.link == i) for i in range(2)]}


def test_the_report_equals_the_records_and_their_events(client, measured):
    report = client.get(f"/api/campaigns/{measured['_id']}/report")
    assert report.status_code == 200, report.get_json()
    body = report.get_json()
    expected = _expected(measured["_id"])
    assert body["opens"] == expected["opens"] and body["clicks"] == expected["clicks"]
    assert body["opens"]["uniqueHuman"] < body["opens"]["unique"]  # the scanners are not people
    assert (body["sent"], body["handedOff"], body["total"]) == (expected["sent"], expected["handedOff"], PEOPLE)
    assert [link["total"] for link in body["links"]] == expected["links"]
    series = body["series"]
    assert sum(p["opens"] for p in series) == body["opens"]["total"]
    assert sum(p["clicks"] for p in series) == body["clicks"]["total"]
    assert {p["granularity"] for p in series} == {"hour", "day"}
    assert [p["at"] for p in series] == sorted(p["at"] for p in series)


def test_the_csv_equals_the_json(client, measured):
    body = client.get(f"/api/campaigns/{measured['_id']}/report").get_json()
    response = client.get(f"/api/campaigns/{measured['_id']}/report?format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    summary = {row["metric"]: row["value"] for row in rows if row["section"] == "summary"}
    for key in ("sent", "delivered", "failed", "handedOff", "revenue", "orders", "unsubscribed"):
        assert float(summary[key]) == body[key], key
    for kind in ("opens", "clicks"):
        for metric in ("unique", "uniqueHuman", "total"):
            assert int(summary[f"{kind}.{metric}"]) == body[kind][metric]
    links = {(int(row["key"]), row["metric"]): row["value"] for row in rows if row["section"] == "link"}
    for link in body["links"]:
        assert int(links[(link["index"], "total")]) == link["total"] and links[(link["index"], "url")] == link["url"]
    series = {(row["key"], row["metric"]): int(row["value"]) for row in rows if row["section"] == "series"}
    for point in body["series"]:
        assert series[(point["at"], "opens")] == point["opens"]
        assert series[(point["at"], "humanClicks")] == point["humanClicks"]


def test_the_campaign_list_and_the_campaign_show_the_reports_figures(client, measured):
    report = client.get(f"/api/campaigns/{measured['_id']}/report").get_json()
    listed = next(c for c in client.get("/api/campaigns").get_json() if c["_id"] == measured["_id"])
    detail = client.get(f"/api/campaigns/{measured['_id']}").get_json()
    for figures in (listed["stats"], detail["stats"]):
        for key in ("opens", "clicks", "sent", "handedOff", "delivered", "revenue", "total", "audienceSize"):
            assert figures[key] == report[key], key


def test_the_period_report_has_one_row_per_campaign_that_started_in_it(client, app, campaign_action, measured):
    started = Campaign.objects.get(pk=measured["_id"]).started_at
    later = client.post("/api/campaigns", json={"name": "Draft", "text": "x", "rules": []}).get_json()  # never sent
    day = started.strftime("%Y-%m-%d")
    response = client.get(f"/api/reports/campaigns?from={day}&to=2100-01-01")
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    assert page["total"] == 1 and [row["campaignId"] for row in page["items"]] == [measured["_id"]]
    report = client.get(f"/api/campaigns/{measured['_id']}/report").get_json()
    assert page["items"][0]["opens"] == report["opens"] and page["items"][0]["revenue"] == report["revenue"]
    assert later["_id"] not in str(page)
    text = client.get(f"/api/reports/campaigns?from={day}&to=2100-01-01&format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and rows[0]["campaignId"] == measured["_id"]
    assert int(rows[0]["opens.uniqueHuman"]) == report["opens"]["uniqueHuman"]
    empty = client.get("/api/reports/campaigns?from=2000-01-01&to=2000-01-02&format=csv").get_data(as_text=True)
    assert empty.startswith("campaignId,name,status,startedAt,audienceSize") and len(empty.splitlines()) == 1


@pytest.mark.parametrize("query", ["", "from=2026-01-01", "to=2026-01-01", "from=x&to=2026-01-01",
                                   "from=2026-02-01&to=2026-01-01", "from=2026-01-01&to=2026-02-01&format=xml",
                                   "from=2026-01-01&to=2026-02-01&perPage=501", "from=2026-01-01&to=2026-02-01&x=1"])
def test_a_bad_period_is_a_400(client, query):
    assert client.get(f"/api/reports/campaigns?{query}").status_code == 400


def test_reports_of_unknown_campaigns_are_404_and_viewers_may_read_them(client, viewer_client):
    assert client.get("/api/campaigns/64b7f0000000000000000000/report").status_code == 404
    assert client.get("/api/campaigns/nope/report").status_code == 404
    created = client.post("/api/campaigns", json={"name": "N", "text": "x", "rules": []}).get_json()
    assert client.get(f"/api/campaigns/{created['_id']}/report?format=pdf").status_code == 400
    body = viewer_client.get(f"/api/campaigns/{created['_id']}/report").get_json()
    assert body["opens"] == {"unique": 0, "uniqueHuman": 0, "total": 0} and body["series"] == [] and body["links"] == []
