"""Data migrations (``flask db upgrade`` / ``flask db status``) on the tier's database: a database
written by the previous version is brought to this code's shape, once, and running it again changes
nothing."""
import io
import logging
from datetime import timedelta

import mongoengine
import pytest
from bson import ObjectId

import engine
from engine import jobs, tracking
from engine import runner as runner_jobs
from migrations import HEAD, MIGRATIONS, Migration
from migrations import runner
from models import AppliedMigration, Campaign, ImportJob, MigrationLock
from models.base import utcnow

VERSIONS = [m.version for m in MIGRATIONS]
OPENED = ObjectId("64b7f3000000000000000001")


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["db", *args])


def _previous_version(client):
    """What the code before migrations wrote: a campaign with no subject (its name was the subject), an
    import job whose mapping is a dict under ``columns``, and a flow message recorded twice (its delivery
    record and a step run ``sent``); no migration recorded."""
    campaign = client.post("/api/campaigns", json={"name": "Spring sale", "message": "Hi {{name}}",
                                                   "rules": [{"field": "totalSpend", "operator": ">=", "value": 0}]})
    assert campaign.status_code == 201, campaign.get_json()
    upload = client.post("/api/imports", content_type="multipart/form-data", data={
        "type": "customers", "mapping": '{"E-Mail": "email", "Name": "name"}',
        "file": (io.BytesIO(b"Name,E-Mail\r\nAda,ada@shop.com\r\n"), "people.csv")})
    assert upload.status_code == 202, upload.get_json()
    assert engine.wait_idle(client.application, timeout=60)
    flow = client.post("/api/flows", json={"name": "Welcome", "trigger": {"type": "customer.created"},
                                           "steps": [{"type": "send", "subject": "Hi", "text": "Welcome"}]})
    assert flow.status_code == 201, flow.get_json()
    assert client.post(f"/api/flows/{flow.get_json()['_id']}/activate").status_code == 200
    assert client.post("/api/customers", json={"name": "Bo", "email": "bo@shop.com"}).status_code == 201
    assert engine.wait_idle(client.application, timeout=60)
    with client.application.app_context():
        jobs.sweep(runner_jobs.submit)  # what the beat does: the flow's message is sent
    assert engine.wait_idle(client.application, timeout=60)
    db = mongoengine.get_db()
    db.campaigns.update_one({"_id": Campaign.objects.get().pk}, {"$unset": {"subject": ""}})
    db.import_jobs.update_one({"_id": ImportJob.objects.get().pk},
                              {"$set": {"columns": {"E-Mail": "email", "Name": "name"}}, "$unset": {"columnPairs": ""}})
    record = db.communication_logs.find_one({"flow": {"$ne": None}})
    assert record is not None and db.flow_steps.count_documents({}) == 0
    db.flow_steps.insert_one({"_id": f"{record['enrolment']}:0", "enrolment": record["enrolment"],
                              "flow": record["flow"], "customer": record["customer"], "step": 0, "type": "send",
                              "startedAt": record["createdAt"], "at": record["createdAt"], "outcome": "sent",
                              "delivery": record["_id"]})
    _opened_before_folds(client.application, Campaign.objects.get().pk)
    db.migrations.delete_many({})
    return campaign.get_json()["_id"], upload.get_json()["_id"]


def _opened_before_folds(app, campaign_pk):
    """A recipient who opened the campaign's message once, recorded as the version before folds did:
    counts on the record, the open already in the campaign's tallies, nothing about folds."""
    from engine import tallies

    sent, opened = utcnow() - timedelta(days=2), utcnow() - timedelta(days=1)
    hour = opened.strftime("%Y-%m-%dT%H:00:00Z")
    mongoengine.get_db().communication_logs.insert_one({
        "_id": OPENED, "campaign": campaign_pk, "customer": OPENED, "email": "cy@shop.com", "status": "DELIVERED",
        "attempts": 1, "batch": "b", "createdAt": sent, "sentAt": sent, "opens": 1, "humanOpens": 1,
        "firstOpenAt": opened, "lastOpenAt": opened, "humanOpenAt": opened,
        "events": [{"kind": "open", "at": opened, "agent": "desktop", "bot": False, "method": "GET", "hour": hour}]})
    with app.app_context():
        key = (campaign_pk, None, False)
        tallies.add({key: {"delivered": 1, "handedOff": 1}})
        tallies.add_hours(key, {tallies.hour_of(hour): {"opens": 1, "humanOpenEvents": 1, "uniqueOpens": 1,
                                                        "humanOpens": 1}})


def _documents():
    db = mongoengine.get_db()
    return {name: sorted(db[name].find({}, {"updatedAt": 0}), key=lambda d: str(d["_id"]))
            for name in ("campaigns", "import_jobs", "customers", "flow_steps", "communication_logs")}


def test_a_database_at_the_previous_version_upgrades_and_a_second_run_changes_nothing(app, client):
    campaign_id, job_id = _previous_version(client)
    status = cli(app, "status", "--check")
    assert status.exit_code == 1 and f"{len(MIGRATIONS)} pending" in status.output, status.output

    first = cli(app, "upgrade")
    assert first.exit_code == 0, first.output + first.stderr
    assert "0001 campaign subjects: 1 campaigns" in first.output
    assert "0002 import job column pairs: 1 importJobs" in first.output
    assert "0003 flow send runs: 1 flowSteps" in first.output
    assert "0004 tracking folds: 1 deliveries" in first.output
    assert f"Database at {HEAD}." in first.output
    # what the API answers comes from the stored fields now
    stored = mongoengine.get_db().campaigns.find_one({})
    assert stored["subject"] == "Spring sale"
    assert client.get(f"/api/campaigns/{campaign_id}").get_json()["subject"] == "Spring sale"
    job = client.get(f"/api/imports/{job_id}").get_json()
    assert job["columns"] == {"E-Mail": "email", "Name": "name"}
    assert "columns" not in mongoengine.get_db().import_jobs.find_one({})
    flow_id = str(mongoengine.get_db().flows.find_one({})["_id"])
    stats = client.get(f"/api/flows/{flow_id}/stats").get_json()
    assert stats["sent"] == 1 and stats["steps"][0]["outcomes"] == {"sent": 1}, "the message counted once"
    customer = mongoengine.get_db().customers.find_one({"email": "bo@shop.com"})["_id"]
    steps = client.get(f"/api/customers/{customer}/timeline?types=flow.step").get_json()
    assert [(i["stepType"], i["outcome"]) for i in steps["items"]] == [("send", "sent")]

    # the recipient opens again: one more open, still one opener (the first is in the tallies already)
    with app.app_context():
        pixel = tracking.token(OPENED, ObjectId(campaign_id), utcnow() - timedelta(days=2), tracking.OPEN)
    person = {"User-Agent": "Mozilla/5.0 (Macintosh) Safari/605"}
    assert client.get(f"/api/t/o/{pixel}", headers=person).status_code == 200
    opens = client.get(f"/api/campaigns/{campaign_id}/report").get_json()["opens"]
    assert (opens["total"], opens["unique"], opens["uniqueHuman"]) == (2, 1, 1)

    after_first, records = _documents(), list(AppliedMigration.objects.order_by("id"))
    assert [r.id for r in records] == VERSIONS and records[0].changed == {"campaigns": 1}
    second = cli(app, "upgrade")
    assert second.exit_code == 0 and "already: nothing to apply" in second.output
    assert _documents() == after_first
    assert list(AppliedMigration.objects.order_by("id")) == records  # nothing recorded again

    status = cli(app, "status", "--check")
    assert status.exit_code == 0 and "Up to date." in status.output
    assert "0001  campaign subjects" in status.output and "applied" in status.output


def test_each_migration_on_its_own_is_idempotent(app, client):
    """Run twice directly (an upgrade interrupted after a migration's work but before its record)."""
    _previous_version(client)
    db = mongoengine.get_db()
    for migration in MIGRATIONS:
        migration.upgrade(db)
        once = _documents()
        assert all(value == 0 for value in migration.upgrade(db).values())
        assert _documents() == once


def test_only_pending_migrations_run(app, client):
    """A database recorded at 0001: 0001 is not run again (a campaign without a subject made since
    stays as it is), 0002 is."""
    _previous_version(client)
    AppliedMigration(id="0001", name="campaign subjects", applied_at=utcnow()).save()
    applied = runner.upgrade()
    assert [m.version for m in applied] == VERSIONS[1:]
    assert "subject" not in mongoengine.get_db().campaigns.find_one({})
    assert ImportJob.objects.get().columns == {"E-Mail": "email", "Name": "name"}


def test_a_failing_migration_stops_the_upgrade_unrecorded_and_releases_the_lock(app, client, monkeypatch):
    def broken(db):
        raise RuntimeError("disk full")

    monkeypatch.setattr("migrations.runner.MIGRATIONS", (MIGRATIONS[0], Migration("0002", "broken", broken)))
    result = cli(app, "upgrade")
    assert result.exit_code != 0 and isinstance(result.exception, RuntimeError)
    assert [r.id for r in AppliedMigration.objects] == ["0001"]
    assert MigrationLock.objects.count() == 0
    monkeypatch.setattr("migrations.runner.MIGRATIONS", MIGRATIONS)
    assert [m.version for m in runner.upgrade()] == VERSIONS[1:]  # run again once fixed: the rest applies


def test_one_upgrade_at_a_time_and_a_dead_holders_lease_ends(app, clock):
    MigrationLock(id=runner.LOCK_ID, owner="web-1:7", expires_at=utcnow() + timedelta(minutes=5)).save()
    busy = cli(app, "upgrade", "--wait", "0")
    assert busy.exit_code == 1 and "another upgrade holds the lock (web-1:7)" in busy.stderr
    assert AppliedMigration.objects.count() == 0

    clock.advance(minutes=6)  # the holder died: its lease is over
    taken = cli(app, "upgrade", "--wait", "0")
    assert taken.exit_code == 0, taken.output + taken.stderr
    assert [r.id for r in AppliedMigration.objects.order_by("id")] == VERSIONS
    assert MigrationLock.objects.count() == 0


def test_a_server_started_on_a_database_behind_its_code_says_so(app, caplog):
    with caplog.at_level(logging.WARNING, logger="migrations.runner"):
        runner.warn_if_pending()
    assert f"{len(MIGRATIONS)} data migration(s) pending" in caplog.text and "flask db upgrade" in caplog.text
    runner.upgrade()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="migrations.runner"):
        runner.warn_if_pending()
    assert caplog.text == ""


def test_status_lists_a_version_this_code_does_not_know(app):
    runner.upgrade()
    AppliedMigration(id="9999", name="from a newer release", applied_at=utcnow()).save()
    result = cli(app, "status")
    assert "9999  from a newer release" in result.output and "upgraded by a newer version" in result.output


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda m: m.version)
def test_every_migration_is_numbered_as_it_is_listed(migration):
    assert VERSIONS == sorted(set(VERSIONS))
    assert migration.upgrade.__module__.rsplit(".", 1)[-1].startswith(f"m{migration.version}_")
