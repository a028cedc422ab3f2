"""Report tallies (engine.tallies): the figures a tallied campaign's report reads from its running
tallies equal those aggregated from its records, after everything that changes them — planning, sends,
refusals, receipts (delivered, hard and soft bounces, complaints, receipts repeated and overtaking the
sender), retries, unsubscribes, opens and clicks by people and bots, bursts over every link, an A/B
test and its winner; and ``flask recount-reports`` rebuilds the same tallies from the records."""
import random
import re
from datetime import timedelta

import pytest
from bson import ObjectId

import engine
from engine import receipts, reports, tallies
from models import Campaign, CampaignTally, Delivery
from models.base import utcnow
from tests.factories import people_shop
from tests.test_abtest import _ab, _send
from tests.test_tracking import HTML, PERSON, SCANNER

PEOPLE = 60


def _nonzero(values):
    return {name: value for name, value in values.items() if value}


def _tallies(pk):
    """The campaign's tallies as the report reads them, per A/B key: totals, links, hours."""
    grouped = {}
    for doc in CampaignTally._get_collection().find({"campaign": pk}):
        grouped.setdefault((doc.get("variant"), doc.get("test")), []).append(doc)
    return {key: (_nonzero(tallies.totals(docs)), {link: _nonzero(v) for link, v in tallies.links(docs).items()},
                  {hour: _nonzero(v) for hour, v in tallies.hours(docs).items()})
            for key, docs in grouped.items()}


def assert_tallies_match_records(client, campaign_id):
    """The report read from the tallies equals the report aggregated from the records, and a recount
    rebuilds exactly the running tallies."""
    pk = ObjectId(campaign_id)
    tallied = client.get(f"/api/campaigns/{campaign_id}/report").get_json()
    listed = next(c for c in client.get("/api/campaigns").get_json() if c["_id"] == campaign_id)["stats"]
    running = _tallies(pk)
    assert running, "the campaign has no tallies"
    Campaign.objects(pk=pk).update_one(set__tallied=False)
    aggregated = client.get(f"/api/campaigns/{campaign_id}/report").get_json()
    assert tallied == aggregated
    assert {k: listed[k] for k in ("opens", "clicks", "sent", "delivered", "failed", "bounced")} == {
        k: aggregated[k] for k in ("opens", "clicks", "sent", "delivered", "failed", "bounced")}
    with client.application.app_context():
        reports.recount(Campaign.objects.get(pk=pk))
    assert Campaign.objects.get(pk=pk).tallied
    assert _tallies(pk) == running
    return tallied


def _fold(app):
    """What the sweep does between the phases: records are folded again and again as they change."""
    with app.app_context():
        tallies.fold()


def _track(app, rng, records_by_email, clock):
    """Every recipient's mail client at work: scanners at once, people later, some bursts over every
    link; what is recorded is folded between the phases and in the middle of one."""
    reader = app.test_client()
    messages = list(engine.vendor(app).messages)
    for message in messages:  # right after the hand-off: link scanners and HEAD requests
        urls = re.findall(r'(?:href|src)="http://localhost:5000(/api/t/[^"]+)"', message.html)
        if rng.random() < 0.3:
            reader.get(urls[-1], headers={"User-Agent": SCANNER})
        if rng.random() < 0.2:
            reader.head(urls[0], headers={"User-Agent": PERSON})
    _fold(app)
    clock.advance(hours=2)
    for index, message in enumerate(messages):
        if index == len(messages) // 2:
            _fold(app)
        urls = re.findall(r'(?:href|src)="http://localhost:5000(/api/t/[^"]+)"', message.html)
        pixel, links = urls[-1], [u for u in urls if "/api/t/c/" in u]
        for _ in range(rng.choice((0, 1, 1, 2))):
            reader.get(pixel, headers={"User-Agent": PERSON})
        roll = rng.random()
        if roll < 0.25 and len(links) >= 2:  # every link within the burst window: a bot
            for number, url in enumerate(links):
                reader.get(url, headers={"User-Agent": PERSON})
                clock.advance(milliseconds=50)
                if number == 0 and index % 2:
                    _fold(app)  # its first click folded as a person's before the burst re-marks it
        elif roll < 0.6:
            reader.get(rng.choice(links), headers={"User-Agent": PERSON})
            clock.advance(seconds=5)
            if rng.random() < 0.3:
                reader.get(links[0], headers={"User-Agent": PERSON})
    _fold(app)
    clock.advance(hours=50)  # two days later: the series has days too
    for message in messages[::3]:
        urls = re.findall(r'(?:href|src)="http://localhost:5000(/api/t/[^"]+)"', message.html)
        reader.get(urls[-1], headers={"User-Agent": PERSON})


def _receipts(app, records, rng, always_bounce=False):
    """Receipts for the records: delivered, failed with hard and soft bounces, complaints, some repeated."""
    items = []
    for index, record in enumerate(records):
        roll = 0.7 if always_bounce else rng.random()
        at = utcnow() + timedelta(minutes=1)
        if roll < 0.6:
            receipt = {"delivery_id": record.pk, "status": "DELIVERED", "timestamp": at}
            if rng.random() < 0.1:
                receipt["complaint"] = True
        elif roll < 0.75:
            receipt = {"delivery_id": record.pk, "status": "FAILED", "timestamp": at, "error": "bounced",
                       "bounce": rng.choice(("hard", "soft"))}
        elif roll < 0.85:
            receipt = {"delivery_id": record.pk, "status": "FAILED", "timestamp": at, "error": "mailbox full"}
        else:
            continue
        items.append(receipt)
    items += items[:5]  # posted again: changes nothing
    with app.app_context():
        receipts.apply(list(enumerate(items)))


@pytest.fixture
def shop(make_app):
    return people_shop(make_app, PEOPLE, AB_MIN_SAMPLE=10, VENDOR_RECEIPTS=False)


def test_a_campaigns_tallies_equal_its_records_through_sends_receipts_retries_and_tracking(shop, clock):
    app, rng = shop.application, random.Random(3)
    created = shop.post("/api/campaigns", json={"name": "Tallied", "html": HTML, "rules": []}).get_json()
    assert Campaign.objects.get(pk=created["_id"]).tallied
    _send(shop, created)
    records = list(Delivery.objects(campaign_id=created["_id"]))
    assert len(records) == PEOPLE
    _track(app, rng, {r.email: r for r in records}, clock)
    _receipts(app, records, rng)
    with app.app_context():
        engine.note_unsubscribed(created["_id"], records[0].customer_id)
        engine.note_unsubscribed(created["_id"], records[0].customer_id)  # the first time counts
    report = assert_tallies_match_records(shop, created["_id"])
    assert report["failed"] and report["bounced"] and report["complaints"] and report["unsubscribed"] == 1
    assert report["clicks"]["uniqueHuman"] < report["clicks"]["unique"]  # the bursts are bots
    assert {p["granularity"] for p in report["series"]} == {"hour", "day"}
    retried = shop.post(f"/api/campaigns/{created['_id']}/retry-failed")
    assert retried.status_code == 202, retried.get_json()
    assert engine.wait_idle(app, 60)
    again = assert_tallies_match_records(shop, created["_id"])
    assert again["failed"] == 0 and again["handedOff"] == PEOPLE
    retried_records = [r for r in Delivery.objects(campaign_id=created["_id"]) if r.retry]
    _receipts(app, retried_records, random.Random(4), always_bounce=True)  # bounced again, hard or soft
    last = assert_tallies_match_records(shop, created["_id"])
    assert last["bounced"] == len(retried_records) > report["bounced"]  # those that bounced before count once


def test_an_ab_tests_tallies_equal_its_records_per_variant_and_after_the_winner(shop, clock):
    app, rng = shop.application, random.Random(5)
    campaign = _ab(shop, abTest={"testPercent": 50, "metric": "clicks", "decideAfterMinutes": 60,
                                 "fallback": "first"})
    _send(shop, campaign)
    tested = list(Delivery.objects(campaign_id=campaign["_id"]))
    _track(app, rng, {r.email: r for r in tested}, clock)
    _receipts(app, tested, rng)
    report = assert_tallies_match_records(shop, campaign["_id"])
    assert [v["variant"] for v in report["variants"]] == ["A", "B"]
    assert sum(v["handedOff"] for v in report["variants"]) == len(tested)
    assert shop.post(f"/api/campaigns/{campaign['_id']}/decide", json={"variant": "B"}).status_code == 200
    assert engine.wait_idle(app, 60)
    assert Delivery.objects(campaign_id=campaign["_id"]).count() == PEOPLE
    done = assert_tallies_match_records(shop, campaign["_id"])
    assert done["handedOff"] == PEOPLE and done["status"] == "completed"


def _sent_and_tracked(shop, clock, name, seed):
    """A campaign to everyone, sent, and its recipients' mail clients at work: (its JSON, its pk)."""
    created = shop.post("/api/campaigns", json={"name": name, "html": HTML, "rules": []}).get_json()
    _send(shop, created)
    _track(shop.application, random.Random(seed), {}, clock)
    return created, ObjectId(created["_id"])


def test_a_campaign_made_before_tallies_is_aggregated_until_recounted(shop, clock):
    """Its records are right but its tallies start late: its report keeps the aggregation."""
    app = shop.application
    created, pk = _sent_and_tracked(shop, clock, "Old", 1)
    CampaignTally._get_collection().delete_many({"campaign": pk})  # as if made by the previous version
    Campaign.objects(pk=pk).update_one(set__tallied=False)
    report = shop.get(f"/api/campaigns/{created['_id']}/report").get_json()
    assert report["handedOff"] == PEOPLE and report["opens"]["total"] > 0
    runner = app.test_cli_runner()
    out = runner.invoke(args=["recount-reports"])
    assert out.exit_code == 0, out.output
    assert "Recounted 1 campaign." in out.output
    assert Campaign.objects.get(pk=pk).tallied
    assert shop.get(f"/api/campaigns/{created['_id']}/report").get_json() == report
    assert runner.invoke(args=["recount-reports", "64b7f0000000000000000000"]).exit_code == 1
    assert runner.invoke(args=["recount-reports", "nope"]).exit_code == 1


def test_a_receipt_that_overtakes_the_sender_is_tallied_once(app):
    """Planned twice, recorded twice, a receipt before the sender's own write: each record counted once."""
    from engine import store

    with app.app_context():
        campaign_pk, now = ObjectId(), utcnow()
        docs = [store.new_record(campaign_pk, {"_id": ObjectId(), "email": f"r{i}@x.example"}, "tok", now,
                                 "x.example") for i in range(3)]
        store.insert_records(docs)
        store.insert_records(docs)  # a re-plan: skipped, not counted again
        ids = [doc["_id"] for doc in docs]
        store.apply_receipt_groups({("DELIVERED", None, now, True, None): [ids[1]]})  # before the sender wrote
        assert store.record_outcomes("tok", ids, now, {}, now) == (2, 0)
        assert store.record_outcomes("tok", ids, now, {}, now) == (0, 0)  # a chunk written twice
        store.apply_receipt_groups({("FAILED", "bounced", now, False, "hard"): [ids[0]]})
        store.apply_receipt_groups({("FAILED", "bounced", now, False, "hard"): [ids[0]]})  # posted again
        figures = tallies.totals(tallies.rows([campaign_pk]))
    assert {k: figures[k] for k in ("pending", "sent", "delivered", "failed", "handedOff", "bounced",
                                    "hardBounced")} == {"pending": 0, "sent": 1, "delivered": 1, "failed": 1,
                                                        "handedOff": 3, "bounced": 1, "hardBounced": 1}


def _pixel(app, delivery_id):
    message = next(m for m in engine.vendor(app).messages if m.delivery_id == str(delivery_id))
    return re.findall(r'src="http://localhost:5000(/api/t/o/[^"]+)"', message.html)[0]


def test_racing_folds_count_a_record_once_and_an_open_meanwhile_stays_due(shop, clock):
    """Opens and clicks reach the tallies by folds. Two folds read the same due records: the one
    writing second, from what it read, adds nothing; an open recorded between a fold's read and its
    write is left due, and the next fold counts it, once."""
    app = shop.application
    created, pk = _sent_and_tracked(shop, clock, "Racing", 5)
    recorded = sum(r.opens for r in Delivery.objects(campaign_id=pk))
    with app.app_context():
        in_tallies = tallies.totals(CampaignTally._get_collection().find({"campaign": pk}))["opens"]
        assert in_tallies < recorded, "the requests since the last fold wrote only their records"
        stale = list(Delivery._get_collection().find({"tallyDue": True}, tallies._FOLD_PROJECTION))
        assert len(stale) > 10
    clock.advance(hours=1)
    assert shop.get(_pixel(app, stale[0]["_id"]), headers={"User-Agent": PERSON}).status_code == 200
    with app.app_context():
        assert tallies.fold_records(stale) == len(stale) - 1  # all but the one opened meanwhile
        assert tallies.fold_records(stale) == 0  # the other fold, from what it read: nothing
        assert Delivery._get_collection().count_documents({"tallyDue": True}) == 1
    report = assert_tallies_match_records(shop, created["_id"])
    opened = Delivery.objects.get(pk=stale[0]["_id"])
    assert report["opens"]["total"] == sum(r.opens for r in Delivery.objects(campaign_id=pk)) and opened.opens >= 1


def test_the_sweep_folds_what_is_due(shop, clock):
    """Without anyone reading a report, the scheduler's sweep folds the recorded opens and clicks."""
    from engine import jobs, runner

    app = shop.application
    _, pk = _sent_and_tracked(shop, clock, "Swept", 6)
    with app.app_context():
        assert tallies.has_due()
        jobs.sweep(runner.submit)
    assert engine.wait_idle(app, 60)
    with app.app_context():
        assert not tallies.has_due()
        folded = tallies.totals(CampaignTally._get_collection().find({"campaign": pk}))
    assert folded["opens"] == sum(r.opens for r in Delivery.objects(campaign_id=pk)) > 0
    assert folded["clicks"] == sum(r.clicks for r in Delivery.objects(campaign_id=pk)) > 0
