"""CSV imports: upload checks that store nothing on refusal, per-row errors by line, re-imports that
write nothing twice, a job resumed after its worker died, and the ``flask import`` command."""
import io
import json

import pytest
from mongoengine.connection import get_db

import engine
from engine import imports, ingest
from models import Customer, ImportJob, ImportRowError, Order
from models.base import utcnow
from models.import_job import RUNNING
from models.roles import MARKETER
from tests.factories import make_user, signed_in


class WorkerDied(BaseException):
    """A worker process dying mid-job: nothing in the importer handles it (not an Exception)."""


def upload(client, text, kind="customers", mapping=None, filename="people.csv", headers=None, **form):
    data = {"type": kind, "file": (io.BytesIO(text if isinstance(text, bytes) else text.encode()), filename), **form}
    if mapping is not None:
        data["mapping"] = mapping if isinstance(mapping, str) else json.dumps(mapping)
    return client.post("/api/imports", data=data, content_type="multipart/form-data", headers=headers or {})


def finished(client, response):
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"].endswith(response.get_json()["_id"])
    assert engine.wait_idle(client.application, timeout=60)
    return client.get(f"/api/imports/{response.get_json()['_id']}").get_json()


def row_errors(client, job):
    return [(e["row"], e["field"], e["message"])
            for e in client.get(f"/api/imports/{job['_id']}/errors?per_page=100").get_json()["items"]]


def stored_files():
    return get_db()["imports.files"].count_documents({}), get_db()["imports.chunks"].count_documents({})


def test_a_customers_file_is_imported_with_each_bad_row_reported_by_line(client):
    text = ("\ufeffName;E-Mail;Tags;Subscribed\r\n"
            '"Lee, Ann";ANN@shop.com;vip|new;yes\r\n'
            '"Multi\r\nline";multi@shop.com;;no\r\n'
            "Broken;not-an-email;;\r\n"
            "\r\n"
            "Too;many;columns;here;extra\r\n"
            "Too few\r\n"
            "Ann Again;ann@shop.com;late;\r\n"
            "=HYPERLINK(\"http://evil\");formula@shop.com;@SUM(1);\r\n")
    job = finished(client, upload(client, text, mapping={"E-Mail": "email"}))
    assert job["status"] == "completed" and job["progress"] == 1.0
    assert job["counts"] == {"read": 7, "inserted": 3, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 3}
    assert row_errors(client, job) == [
        (2, None, "Duplicate: line 9 has the same key and wins."),
        (5, "email", "Not a valid email address."),
        (7, None, "Expected 4 columns, found 5."),
        (8, None, "Expected 4 columns, found 1."),
    ]
    ann = Customer.objects.get(email="ann@shop.com")
    assert ann.name == "Ann Again" and ann.tags == ["late"]  # the later row wins, the earlier is not applied
    multi = Customer.objects.get(email="multi@shop.com")
    assert multi.name == "Multi\r\nline" and multi.subscribed is False and multi.unsubscribed_at is not None
    assert Customer.objects.get(email="formula@shop.com").name == '=HYPERLINK("http://evil")'  # text, as given
    assert stored_files() == (0, 0)  # the file is gone once imported


def test_re_importing_a_file_writes_nothing_twice(client, customer):
    ann = customer("Ann", "ann@shop.com")
    orders = ("externalId,customerEmail,amount,date\n"
              "O-1,ann@shop.com,10.5,2026-03-01\n"
              "O-2,ann@shop.com,4.5,2026-04-01T10:00:00Z\n"
              f"O-3,{'x' * 3}@nobody.com,1,\n")
    first = finished(client, upload(client, orders, kind="orders"))
    assert first["counts"] == {"read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 1}
    assert row_errors(client, first) == [(4, "customerEmail", "No customer has the email xxx@nobody.com.")]
    again = finished(client, upload(client, orders, kind="orders"))
    assert again["counts"] == {"read": 3, "inserted": 0, "updated": 0, "unchanged": 0, "skipped": 2, "failed": 1}
    stored = client.get(f"/api/customers/{ann['_id']}").get_json()
    assert (stored["totalSpend"], stored["numVisits"], stored["lastVisitDate"]) == (15.0, 2, "2026-04-01T10:00:00.000Z")
    assert Order.objects.count() == 2

    people = "name,email\nAnn,ann@shop.com\nBob,bob@shop.com\n"
    assert finished(client, upload(client, people))["counts"]["inserted"] == 1
    assert finished(client, upload(client, people))["counts"] == {
        "read": 2, "inserted": 0, "updated": 0, "unchanged": 2, "skipped": 0, "failed": 0}  # nothing to change
    assert Customer.objects.count() == 2 and Customer.objects.get(email="ann@shop.com").total_spend == 15.0


def _big(n):
    return "name,email\n" + "".join(f"Person {i},p{i}@shop.com\n" for i in range(n))


REFUSED_UPLOADS = [
    # (what, request kwargs, status, error field)
    ("wrong content type", dict(json={"type": "customers"}), 415, None),
    ("no file", dict(data={"type": "customers"}, content_type="multipart/form-data"), 400, "file"),
    ("unknown type", dict(text="name,email\nA,a@x.com\n", kind="contacts"), 400, "type"),
    ("empty file", dict(text=""), 400, "file"),
    ("header only blank", dict(text="\n\n"), 400, "file"),
    ("missing required column", dict(text="name\nAnn\n"), 400, "columns"),
    ("unknown column, no mapping", dict(text="name,email,zip\nA,a@x.com,1\n"), 400, "columns"),
    ("mapping names no column", dict(text="name,email\nA,a@x.com\n", mapping={"Mail": "email"}), 400, "mapping"),
    ("mapping not JSON", dict(text="name,email\nA,a@x.com\n", mapping="{email"), 400, "mapping"),
    ("two columns, one field", dict(text="name,email,mail\nA,a@x.com,b\n", mapping={"mail": "email"}), 400, "columns"),
    ("invalid UTF-8", dict(text=b"name,email\nA\xff\xfe,a@x.com\n"), 400, "file"),
    ("cut inside a character", dict(text="name,email\nA,a@x.com\n\u00e9".encode()[:-1]), 400, "file"),
    ("orders without externalId", dict(text="customerEmail,amount\na@x.com,1\n", kind="orders"), 400, "columns"),
    ("bad mode", dict(text="name,email\nA,a@x.com\n", mode="upsert"), 400, "mode"),
]


@pytest.mark.parametrize("what, kwargs, status, field", REFUSED_UPLOADS, ids=[r[0] for r in REFUSED_UPLOADS])
def test_a_refused_upload_stores_nothing(client, what, kwargs, status, field):
    if "text" in kwargs:
        kwargs = dict(kwargs)
        response = upload(client, kwargs.pop("text"), **kwargs)
    else:
        response = client.post("/api/imports", **kwargs)
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert body["error"]
    if field:
        assert field in body["errors"], body
    assert ImportJob.objects.count() == 0 and stored_files() == (0, 0) and Customer.objects.count() == 0


def test_a_file_over_the_limit_is_413_with_nothing_stored(make_app):
    app = make_app(MAX_IMPORT_MB=0.01)  # 10 KiB
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    response = upload(client, _big(1000))  # ≈ 25 KiB
    assert response.status_code == 413 and response.get_json()["error"]
    assert ImportJob.objects.count() == 0 and stored_files() == (0, 0) and Customer.objects.count() == 0
    assert upload(client, _big(100)).status_code == 202


def test_viewers_read_imports_but_cannot_start_one(client, viewer_client):
    job = finished(client, upload(client, "name,email\nA,a@x.com\n"))
    assert viewer_client.get("/api/imports").get_json()["items"][0]["_id"] == job["_id"]
    assert upload(viewer_client, "name,email\nB,b@x.com\n").status_code == 403
    assert client.get("/api/imports/" + "0" * 24).status_code == 404


def test_a_job_whose_worker_died_resumes_from_its_last_chunk(make_app, monkeypatch):
    app = make_app(IMPORT_CHUNK_ROWS=10, IMPORT_LEASE_S=60)
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    text = _big(35).replace("p7@shop.com", "bad") + "Person 3,p3@shop.com\n"  # a bad row, a duplicate
    original, calls = ingest.upsert_customers, []

    def dies_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise WorkerDied()
        return original(*args, **kwargs)

    monkeypatch.setattr(ingest, "upsert_customers", dies_on_third_chunk)
    with app.app_context():
        job = ImportJob.objects.get(pk=_queued(client, text))
        with pytest.raises(WorkerDied):
            imports.run_import(job.pk)
        job.reload()
        assert (job.status, job.rows_done, job.counts["inserted"]) == (RUNNING, 20, 19)
        assert imports.run_import(job.pk) is None  # its lease is live: nobody else takes it
        ImportJob.objects(pk=job.pk).update_one(set__heartbeat_at=utcnow().replace(year=2000))
        from engine import jobs

        resumed = []
        jobs.sweep(lambda name, *args: resumed.append((name, args)))
        assert [job for job in resumed if job[0] == "crm.run_import"] == [("crm.run_import", (str(job.pk),))]
        assert imports.run_import(job.pk) == "completed"
        job.reload()
    assert job.counts == {"read": 36, "inserted": 34, "updated": 0, "unchanged": 1, "skipped": 0,
                          "failed": 1}
    assert Customer.objects.count() == 34
    assert [(e.row, e.field) for e in ImportRowError.objects(job_id=job.pk)] == [(9, "email")]


def test_orders_credited_once_when_the_worker_dies_between_writing_and_crediting(make_app, monkeypatch):
    app = make_app(IMPORT_CHUNK_ROWS=4)
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    for who in ("a", "b"):
        client.post("/api/customers", json={"name": who, "email": f"{who}@x.com"})
    text = "externalId,customerEmail,amount\n" + "".join(
        f"E{i},{'a' if i % 2 else 'b'}@x.com,{i + 1}\n" for i in range(10))
    original, calls = ingest.credit_customers, []

    def dies_after_writing_second_chunk(source, now=None):
        calls.append(source)
        if len(calls) == 2:
            original(source, now)  # credited, then the worker dies before the chunk is committed
            raise WorkerDied()
        return original(source, now)

    monkeypatch.setattr(ingest, "credit_customers", dies_after_writing_second_chunk)
    with app.app_context():
        job_id = _queued(client, text, kind="orders")
        with pytest.raises(WorkerDied):
            imports.run_import(job_id)
        ImportJob.objects(pk=job_id).update_one(set__heartbeat_at=utcnow().replace(year=2000))
        assert imports.run_import(job_id) == "completed"
    totals = {c.email: (c.total_spend, c.num_visits) for c in Customer.objects}
    assert totals == {"a@x.com": (2 + 4 + 6 + 8 + 10, 5), "b@x.com": (1 + 3 + 5 + 7 + 9, 5)}
    assert Order.objects.count() == 10


def _queued(client, text, kind="customers"):
    """Create a job without running it (the test runs it by hand)."""
    from controllers.imports import create_import
    from schemas.import_job import ImportForm

    class File:
        stream, filename = io.BytesIO(text.encode()), "f.csv"

    with client.application.test_request_context():
        return create_import(File(), {"type": kind}, ImportForm(), 10 ** 7, enqueue=False).pk


def test_flask_import_command_reports_progress_and_a_summary(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("Name,Email\nAnn,ann@x.com\nBad,bad\n")
    result = app.test_cli_runner().invoke(args=["import", "customers", str(path)])
    assert result.exit_code == 0, result.output
    assert "completed: 2 read, 1 inserted, 0 updated, 0 unchanged, 0 skipped, 1 failed" in result.output
    assert "line 3 email: Not a valid email address." in result.output
    refused = app.test_cli_runner().invoke(args=["import", "customers", str(path), "--mapping", '{"Mail": "email"}'])
    assert refused.exit_code != 0 and "no column 'Mail'" in refused.output


def test_a_suppressions_file_adds_each_address_once_and_campaigns_skip_them(client, campaign_action):
    client.post("/api/customers/bulk", json=[{"name": "Ann", "email": "ann@shop.com"},
                                             {"name": "Bob", "email": "bob@shop.com"}])
    client.post("/api/suppressions", json={"email": "old@shop.com"})
    text = "Email,Note\nANN@shop.com,asked by phone\nold@shop.com,\nnot-an-email,\nann@shop.com,again\n"
    job = finished(client, upload(client, text, kind="suppressions"))
    assert job["counts"] == {"read": 4, "inserted": 1, "updated": 0, "unchanged": 0, "skipped": 2, "failed": 1}
    listed = {s["email"]: s for s in client.get("/api/suppressions").get_json()["items"]}
    assert set(listed) == {"ann@shop.com", "old@shop.com"} and listed["ann@shop.com"]["reason"] == "import"
    campaign = client.post("/api/campaigns", json={"name": "Hi", "message": "Hi", "rules": []}).get_json()
    done = campaign_action(client, campaign["_id"])
    assert (done["stats"]["total"], done["stats"]["suppressed"]) == (1, 1)


def test_a_row_with_text_the_api_refuses_is_a_row_error_not_a_stored_customer(client):
    """NUL (and lone surrogates) are refused in every API body; an import row is no back door."""
    text = "name,email\r\nNul\x00Byte,nul@shop.com\r\nFine,fine@shop.com\r\n"
    job = finished(client, upload(client, text))
    assert job["counts"]["inserted"] == 1 and job["counts"]["failed"] == 1
    assert row_errors(client, job) == [(2, "name", "Text may not contain NUL characters or unpaired surrogates.")]
    assert Customer.objects(email="nul@shop.com").count() == 0


def test_an_error_on_a_row_spanning_lines_is_reported_on_its_first_line(client):
    text = ('name,email\r\n"Multi\r\nline\r\nname",not-an-email\r\nFine,fine@shop.com\r\n'
            '"Two\r\nlines",a@shop.com,extra\r\n')
    job = finished(client, upload(client, text))
    assert row_errors(client, job) == [(2, "email", "Not a valid email address."),
                                       (6, None, "Expected 2 columns, found 3.")]


@pytest.mark.parametrize("mapping", [{"name": "$set"}, {"name": "name", "email": "email.$"}, {"": "name"},
                                     {"name\u0000": "name"}, {"$where": "name"}])
def test_odd_mappings_are_400s_that_keep_no_upload(client, mapping):
    response = upload(client, "name,email\r\nAda,ada@shop.com\r\n", mapping=mapping)
    assert response.status_code == 400, response.get_json()
    assert any(key.startswith("mapping") for key in response.get_json()["errors"]), response.get_json()
    assert stored_files() == (0, 0)
    assert ImportJob.objects.count() == 0


def test_column_names_no_document_key_could_hold_import_as_any_other(client):
    """A header may say "$where" or "E.Mail" (a 500 that kept the upload, before)."""
    text = "$where,E.Mail,Tags.\r\nAda,ada@shop.com,vip\r\n"
    job = finished(client, upload(client, text, mapping={"$where": "name", "E.Mail": "email", "Tags.": "tags"}))
    assert job["status"] == "completed" and job["counts"]["inserted"] == 1, job
    assert job["columns"] == {"$where": "name", "E.Mail": "email", "Tags.": "tags"}
    assert Customer.objects.get(email="ada@shop.com").tags == ["vip"]
    assert stored_files() == (0, 0)  # a finished job keeps no upload


def test_a_job_that_cannot_be_saved_leaves_no_upload_behind(client, monkeypatch):
    from models import ImportJob as Job

    def refuse(self, *args, **kwargs):
        raise RuntimeError("the database refused the job")

    monkeypatch.setattr(Job, "save", refuse)
    assert upload(client, "name,email\r\nAda,ada@shop.com\r\n").status_code == 500  # the server's fault
    assert stored_files() == (0, 0)


@pytest.mark.parametrize("hours", [0, 2])
def test_a_failed_import_keeps_its_upload_only_as_long_as_the_setting_says(make_app, clock, monkeypatch, hours):
    from engine import imports, jobs, runner
    from tests.factories import make_user, signed_in

    app = make_app(IMPORT_FAILED_UPLOAD_HOURS=hours)
    client = signed_in(app, make_user("marketer", email="m@shop.com"))

    def broken(*args, **kwargs):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(imports, "_write", broken)
    job = finished(client, upload(client, "name,email\r\nAda,ada@shop.com\r\n"))
    assert job["status"] == "failed"
    assert stored_files() == ((1, 1) if hours else (0, 0))
    clock.advance(hours=hours + 1)
    with app.app_context():
        jobs.sweep(runner.submit)
    assert stored_files() == (0, 0)
    assert client.get(f"/api/imports/{job['_id']}").get_json()["status"] == "failed"  # the job itself stays


def test_an_import_replayed_with_its_idempotency_key_starts_no_second_job(client):
    text = "name,email\r\nAda,ada@shop.com\r\n"
    first = upload(client, text, headers={"Idempotency-Key": "import-1"})
    replay = upload(client, text, headers={"Idempotency-Key": "import-1"})
    assert first.status_code == replay.status_code == 202
    assert replay.get_json()["_id"] == first.get_json()["_id"]
    assert replay.headers["Location"] == first.headers["Location"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert ImportJob.objects.count() == 1


def test_a_chunk_run_again_reports_its_first_rows_error_once(client, monkeypatch):
    """A worker that dies after writing a chunk's row errors but before recording the chunk as done:
    the next worker runs the chunk again and its errors are replaced, not repeated."""
    from engine import imports

    real = imports._commit

    def twice(*args):  # the chunk committed, then committed again as its next worker would
        real(*args)
        real(*args)

    monkeypatch.setattr(imports, "_commit", twice)
    job = finished(client, upload(client, "name,email\r\nBad,not-an-email\r\nAda,ada@shop.com\r\n"))
    assert row_errors(client, job) == [(2, "email", "Not a valid email address.")]


@pytest.mark.parametrize("settings, text, field, message", [
    ({"IMPORT_MAX_LINE_KB": 1}, "name,email\r\n" + "x" * 2000 + ",a@shop.com\r\n", "file",
     "Lines may be at most 1 KiB (IMPORT_MAX_LINE_KB)."),
    ({"IMPORT_MAX_LINE_KB": 1}, "name,email," + "y" * 5000, "file", "Lines may be at most 1 KiB (IMPORT_MAX_LINE_KB)."),
    ({"IMPORT_MAX_LINES": 3}, "name,email\r\n" + "".join(f"P{i},p{i}@shop.com\r\n" for i in range(3)), "file",
     "At most 3 lines (IMPORT_MAX_LINES)."),
    ({"IMPORT_MAX_COLUMNS": 3}, "name,email,a,b\r\nAda,ada@shop.com,1,2\r\n", "columns",
     "At most 3 columns (IMPORT_MAX_COLUMNS)."),
])
def test_files_past_the_caps_are_refused_at_upload_storing_nothing(make_app, settings, text, field, message):
    from tests.factories import make_user, signed_in

    app = make_app(**settings)
    client = signed_in(app, make_user("marketer", email="m@shop.com"))
    response = upload(client, text)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["errors"] == {field: [message]}
    assert stored_files() == (0, 0) and ImportJob.objects.count() == 0


def test_a_single_line_file_is_refused_without_being_read_whole(make_app):
    """The probe's 50 MB file of one line took a worker from 109 MB to 1.47 GB: refused at 64 KiB."""
    from tests.factories import make_user, signed_in

    client = signed_in(make_app(), make_user("marketer", email="m@shop.com"))
    response = upload(client, b"name,email," + b"z" * (5 * 1024 * 1024))
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"file": ["Lines may be at most 64 KiB (IMPORT_MAX_LINE_KB)."]}
    assert stored_files() == (0, 0)


def test_row_errors_are_kept_up_to_the_limit_and_counted_beyond_it(make_app):
    from models.import_job import ROW_ERRORS_DAYS
    from tests.factories import make_user, signed_in

    client = signed_in(make_app(IMPORT_MAX_ROW_ERRORS=5, IMPORT_CHUNK_ROWS=4), make_user("marketer", email="m@shop.com"))
    text = "name,email\r\n" + "".join(f"Bad {i},not-an-email-{i}\r\n" for i in range(12)) + "Ada,ada@shop.com\r\n"
    job = finished(client, upload(client, text))
    assert job["counts"]["failed"] == 12 and job["counts"]["inserted"] == 1  # every failure counted
    assert [row for row, _, _ in row_errors(client, job)] == [2, 3, 4, 5, 6]  # the first five kept
    assert job["rowErrorsDropped"] is True
    ttl = [index for index in ImportRowError._get_collection().index_information().values()
           if "expireAfterSeconds" in index]
    assert [(index["key"], index["expireAfterSeconds"]) for index in ttl] == [
        ([("createdAt", 1)], ROW_ERRORS_DAYS * 24 * 3600)]


def test_a_running_import_never_delays_a_campaign(make_app, monkeypatch):
    """Imports have threads of their own: with one engine thread, a campaign still goes out while an
    import holds its thread (four large imports once kept a campaign at 0 deliveries for 60 s)."""
    import threading
    import time

    from engine import imports
    from models import Campaign
    from tests.factories import make_user, seed_customers, signed_in

    app = make_app(ENGINE_THREADS=1, IMPORT_THREADS=1)
    client = signed_in(app, make_user("marketer", email="m@shop.com"))
    seed_customers([{"name": "Ann", "email": "ann@shop.com"}])
    held, release = threading.Event(), threading.Event()
    real = imports._commit

    def slow(*args):
        held.set()
        release.wait(30)
        real(*args)

    monkeypatch.setattr(imports, "_commit", slow)
    job = upload(client, "name,email\r\nAda,ada@shop.com\r\n").get_json()
    assert held.wait(10)  # the import is running, and holding its thread
    try:
        campaign = client.post("/api/campaigns", json={"name": "Now", "message": "Hi", "rules": []}).get_json()
        assert client.post(f"/api/campaigns/{campaign['_id']}/send").status_code == 202
        deadline = time.monotonic() + 30
        while Campaign.objects.get(pk=campaign["_id"]).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"
        assert ImportJob.objects.get(pk=job["_id"]).status == "running"  # still held
    finally:
        release.set()
    assert engine.wait_idle(app, timeout=30)
    assert ImportJob.objects.get(pk=job["_id"]).status == "completed"


def test_a_column_mapped_to_null_is_ignored(client):
    text = "name,email,Notes\nAnn,ann@shop.com,call her back\n"
    job = finished(client, upload(client, text, mapping={"Notes": None}))
    assert job["counts"]["inserted"] == 1 and row_errors(client, job) == []
    assert Customer.objects.get(email="ann@shop.com").name == "Ann"
