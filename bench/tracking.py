"""Opens, clicks and reports: the hottest routes a campaign creates, and its report at 100,000 recipients.

    ./scripts/bench.sh tracking        # this alone; its section of bench/RESULTS.md is rewritten

1. Pixel and click requests/s with wrk on loopback (gunicorn, one worker, the same settings as
   bench/http.py): the CRM's ``/api/t/o/<token>`` and ``/api/t/c/<token>``, each request a random
   recipient, against a bare Flask app doing **the same single update** (``event_update``: counts,
   times, the event on the capped log) on the same records, with the same indexes, in the same
   store, answering the same GIF or redirect (goal ≥ 0.7). Two sizes:
   - BENCH_TRACKED (100,000): the campaign of 100,000 the issue names; at ~1,000 requests/s a
     recipient comes back every ~100 s, as people do (the goal rows);
   - BENCH_TRACKED_STRESS (1,000): every recipient clicks again about every second, so ~40% of
     clicks land within ``TRACKING_ALL_LINKS_S`` of that recipient's previous one and take the path
     that reads the record back to look for a burst over every link (the bot pattern; reported,
     no goal). 0 leaves it out.
2. The report of one campaign with BENCH_REPORT (100,000) delivery records and three events each
   (300,000: opens and clicks, a tenth by bots), against one ``count_documents`` over the same records
   (goal ≤ 5); on the embedded store and, unless BENCH_WIRE=0, over the wire on the stand-in at
   BENCH_REPORT_WIRE (20,000). The campaign is tallied (engine.tallies): its report looks for records
   due to be folded (none: the records are seeded folded, with the tallies the fold adds for them),
   reads its tally documents and aggregates only its attributed orders. Then the same report once 1% of
   the recipients opened again since the last fold (the sweep's period): it folds them first (reported).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARK_START, MARK_END = "<!-- tracking: bench/tracking.py -->", "<!-- end of tracking -->"


def _tokens(n, paths_file, bare_file):
    """Write wrk's path lists: the CRM's signed tokens and the bare app's ids, for every record."""
    from flask import Flask

    from bench.apps import SENT_AT, TRACKING_CAMPAIGN, tracked_deliveries
    from engine import tracking

    app = Flask("tokens")
    app.config.update(SECRET_KEY="bench-secret-" + "x" * 40)
    crm, bare = {"open": [], "click": []}, {"open": [], "click": []}
    with app.app_context():
        for i, doc in enumerate(tracked_deliveries(n)):
            link = i % 2
            crm["open"].append("/api/t/o/" + tracking.token(doc["_id"], TRACKING_CAMPAIGN, SENT_AT, tracking.OPEN))
            crm["click"].append("/api/t/c/" + tracking.token(doc["_id"], TRACKING_CAMPAIGN, SENT_AT, tracking.CLICK,
                                                             link))
            bare["open"].append(f"/bare/o/{doc['_id']}")
            bare["click"].append(f"/bare/c/{doc['_id']}/{link}")
    paths_file.write_text(json.dumps(crm))
    bare_file.write_text(json.dumps(bare))
    return crm, bare


def _lua(directory, name, paths):
    script = Path(directory) / f"{name}.lua"
    script.write_text("paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n"
                      "request = function()\n  return wrk.format(nil, paths[math.random(#paths)])\nend\n")
    return str(script)


def _http_runs(n):
    """Median wrk runs of both apps holding ``n`` records: ``{(side, kind): run}``."""
    from bench.apps import TRACKED_ENV
    from bench.http import ROUNDS, App, _median_run, wrk

    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "MONGODB_URI")}
    env.update({"LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), TRACKED_ENV: str(n)})
    with tempfile.TemporaryDirectory() as tmp:
        crm_paths, bare_paths = _tokens(n, Path(tmp) / "crm.json", Path(tmp) / "bare.json")
        scripts = {(side, kind): _lua(tmp, f"{side}-{kind}", paths[kind])
                   for side, paths in (("crm", crm_paths), ("bare", bare_paths)) for kind in ("open", "click")}
        apps = {"crm": App("crm_tracking", env, tmp).start(), "bare": App("bare_tracking", env, tmp).start()}
        try:
            for app in apps.values():  # warm up (first requests fill caches) outside the measured runs
                side = "crm" if app is apps["crm"] else "bare"
                wrk(app.base + "/", script=scripts[(side, "open")], seconds=2)
            runs = {key: [] for key in scripts}
            for _ in range(ROUNDS):
                for (side, kind), script in scripts.items():
                    runs[(side, kind)].append(wrk(apps[side].base + "/", script=script))
        finally:
            for app in apps.values():
                app.stop()
    med = {key: _median_run(r) for key, r in runs.items()}
    for key, run in med.items():
        if run["non2xx"]:
            raise RuntimeError(f"{key}: {run['non2xx']} responses were neither 2xx nor 3xx")
    return med


def http_rows():
    from bench.http import _row, wrk_available

    if not wrk_available():
        print("wrk is not installed: the pixel and click rows are skipped")
        return []
    n = int(os.environ.get("BENCH_TRACKED", "100000"))
    med = _http_runs(n)
    rows = [
        _row(f"open pixel `GET /api/t/o/<token>` req/s, random recipient of {n:,}",
             "bare Flask: the same update on the same records, the same GIF, same gunicorn",
             med[("crm", "open")], med[("bare", "open")], "≥ 0.7"),
        _row(f"tracked link `GET /api/t/c/<token>` req/s (302), random recipient of {n:,}",
             "bare Flask: the same update, the same redirect", med[("crm", "click")], med[("bare", "click")],
             "≥ 0.7"),
    ]
    stress = int(os.environ.get("BENCH_TRACKED_STRESS", "1000"))
    if stress:
        med = _http_runs(stress)
        rows += [
            _row(f"open pixel, {stress:,} recipients each opening about every second",
                 "bare Flask: the same update", med[("crm", "open")], med[("bare", "open")], "report"),
            _row(f"tracked link, {stress:,} recipients each clicking about every second (~40% look for a burst)",
                 "bare Flask: the same update", med[("crm", "click")], med[("bare", "click")], "report"),
        ]
    return rows


def seed_report(n):
    """A sent, tallied campaign with ``n`` records and three events each (two opens, one click; a tenth
    by bots), inserted directly, as tracking leaves them once folded (the events' hour and link
    counters, ``folded`` their state); its tallies are what the fold's own ``fold_deltas`` adds for
    them (tests/test_tallies.py checks the fold against a recount from the records)."""
    from bson import ObjectId

    from engine import tallies
    from engine.tracking import HOUR
    from models import Campaign, Delivery

    started = datetime(2026, 1, 1, 9)
    campaign = Campaign(name="Report", message="Hi", html='<a href="https://a.example/">a</a><a href="https://b.'
                        'example/">b</a>', links=["https://a.example/", "https://b.example/"], status="completed",
                        started_at=started, planned=started, audience_size=n, tallied=True,
                        rules={"op": "AND", "rules": []}).save()
    collection, batch, summed = Delivery._get_collection(), [], {}
    for i in range(n):
        bot = i % 10 == 0
        first = started + timedelta(minutes=i % 4000)
        events = [{"kind": "open", "at": first, "agent": "desktop", "bot": bot},
                  {"kind": "open", "at": first + timedelta(hours=30), "agent": "mobile", "bot": False},
                  {"kind": "click", "at": first + timedelta(hours=31), "link": i % 2, "agent": "mobile", "bot": False}]
        record = {"_id": ObjectId(), "campaign": campaign.pk, "customer": ObjectId(), "email": f"r{i}@x.example",
                  "status": "DELIVERED", "attempts": 1, "batch": "b", "createdAt": started, "sentAt": started,
                  "deliveredAt": started, "opens": 2, "humanOpens": 1 if bot else 2, "clicks": 1,
                  "humanClicks": 1, "firstOpenAt": first, "lastOpenAt": events[1]["at"],
                  "firstClickAt": events[2]["at"], "lastClickAt": events[2]["at"], "events": events,
                  "clickedLinks": [i % 2], "humanLinks": [i % 2], "linkClicks": {str(i % 2): 1}, "eventHours": {}}
        for event in events:
            event["hour"] = event["at"].strftime(HOUR)
            counts = record["eventHours"].setdefault(tallies.hour_of(event["hour"]), {})
            for name in (f"{event['kind']}s", f"human{event['kind'].title()}Events")[:1 if event["bot"] else 2]:
                counts[name] = counts.get(name, 0) + 1
        record["folded"] = tallies._state(record)
        for hour, counts in tallies.fold_deltas({}, record["folded"]).items():
            into = summed.setdefault(hour, {})
            for name, value in counts.items():
                into[name] = into.get(name, 0) + value
        batch.append(record)
        if len(batch) == 5000:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)
    key = (campaign.pk, None, False)
    tallies.add({key: {"delivered": n, "handedOff": n, **summed.pop(None)}})
    tallies.add_hours(key, summed)
    return campaign


def report_one(n, repeats=3):
    """In a child process (the store named by the environment): the report vs count_documents."""
    import mongoengine

    from app import create_app
    from controllers.reports import campaign_report
    from models import Delivery

    app = create_app({"APP_ENV": "testing", "TESTING": True, "LOG_LEVEL": "WARNING", "MONGO_DB": "crm_bench",
                      "VENDOR_RECEIPTS": False, "SCHEDULER_ENABLED": False})
    with app.app_context():
        db = mongoengine.get_db()
        db.client.drop_database(db.name)
        Delivery.ensure_indexes()
        campaign = seed_report(n)
        crm, base = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            report = campaign_report(str(campaign.pk))
            crm.append(time.perf_counter() - started)
            started = time.perf_counter()
            count = Delivery._get_collection().count_documents({"campaign": campaign.pk})
            base.append(time.perf_counter() - started)
        assert count == n and report["opens"]["total"] == 2 * n and report["clicks"]["unique_human"] == n
        assert report["opens"]["unique_human"] == n and report["opens"]["unique"] == n and report["delivered"] == n
        assert sum(link["total"] for link in report["links"]) == n
        assert sum(point["opens"] + point["clicks"] for point in report["series"]) == 3 * n
        due_s = _report_with_due(campaign, n // 100)
        db.client.drop_database(db.name)
    print(json.dumps({"n": n, "crm_s": statistics.median(crm), "base_s": statistics.median(base), "due_s": due_s}))


def _report_with_due(campaign, due):
    """The report once ``due`` recipients have opened again since the last fold (the sweep's period):
    it folds them first. Seconds, after checking the report counts those opens."""
    from controllers.reports import campaign_report
    from engine.tracking import HOUR, OPEN, event_update
    from models import Delivery

    records = Delivery._get_collection()
    at = datetime(2026, 1, 5, 9)
    event = {"kind": "open", "at": at, "agent": "mobile", "ip": None, "method": "GET", "bot": False,
             "hour": at.strftime(HOUR)}
    ids = [doc["_id"] for doc in records.find({"campaign": campaign.pk}, {"_id": 1}).limit(due)]
    records.update_many({"_id": {"$in": ids}}, event_update(OPEN, event, 100))
    before = campaign_report(str(campaign.pk))["opens"]["total"]
    assert before == 2 * campaign.audience_size + due, before  # (this first read folded them)
    records.update_many({"_id": {"$in": ids}}, event_update(OPEN, event, 100))
    started = time.perf_counter()
    report = campaign_report(str(campaign.pk))
    seconds = time.perf_counter() - started
    assert report["opens"]["total"] == before + due
    return seconds


def report_rows():
    from tests.processes import MongoStandIn, base_env

    sides = [("embedded", int(os.environ.get("BENCH_REPORT", "100000")), base_env(PYTHONPATH=str(ROOT)), None)]
    standin = None
    if os.environ.get("BENCH_WIRE", "1") != "0":
        logs = tempfile.mkdtemp()
        standin = MongoStandIn(logs, engine="memory").start()
        sides.append(("over the wire (stand-in)", int(os.environ.get("BENCH_REPORT_WIRE", "20000")),
                      base_env(PYTHONPATH=str(ROOT), MONGO_URI=standin.uri("crm_bench"), MONGO_TIMEOUT_MS=600000),
                      standin))
    rows = []
    try:
        for store, n, env, _ in sides:
            out = subprocess.run([sys.executable, "-m", "bench.tracking", "--report-one", str(n)], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=7200)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode or not lines:
                raise RuntimeError(out.stdout[-2000:] + out.stderr[-4000:])
            result = json.loads(lines[-1])
            ratio = result["crm_s"] / result["base_s"]
            print(f"report, {store}, {n:,} records / {3 * n:,} events: {result['crm_s'] * 1000:.1f} ms vs "
                  f"count_documents {result['base_s'] * 1000:.1f} ms | ratio {ratio:.3f}; with {n // 100:,} "
                  f"records due to be folded: {result['due_s'] * 1000:.1f} ms", flush=True)
            rows.append({"measure": f"campaign report ({store}), {n:,} deliveries and {3 * n:,} events",
                         "baseline": "one `count_documents` over the same deliveries", "goal": "≤ 5",
                         "crm": f"{result['crm_s'] * 1000:.1f} ms", "base": f"{result['base_s'] * 1000:.1f} ms",
                         "ratio": ratio})
            rows.append({"measure": f"the same report ({store}) when {n // 100:,} recipients opened again since "
                                    "the last fold (the report folds them first)",
                         "baseline": "one `count_documents` over the same deliveries", "goal": "report",
                         "crm": f"{result['due_s'] * 1000:.1f} ms", "base": f"{result['base_s'] * 1000:.1f} ms",
                         "ratio": result["due_s"] / result["base_s"]})
    finally:
        if standin is not None:
            standin.stop()
    return rows


def write_section(rows):
    """This benchmark's section of ``bench/RESULTS.md`` (replacing the previous one)."""
    from bench import TABLE_HEAD, replace_section, table_row

    lines = ["## Opens, clicks and the campaign report", "",
             f"Written by `./scripts/bench.sh tracking` (or the full run) on {datetime.utcnow():%Y-%m-%d %H:%M} UTC; "
             "each figure beside its baseline measured in the same run (bench/tracking.py says how).", "", *TABLE_HEAD]
    for row in rows:
        goal = row["goal"]
        if goal == "report":
            lines.append(table_row(row, ""))
            continue
        met = row["ratio"] >= float(goal[1:]) if goal[0] == "≥" else row["ratio"] <= float(goal[1:])
        lines.append(table_row(row, " (met)" if met else " (missed)"))
    replace_section("tracking", MARK_START, MARK_END, lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--report-one":
        report_one(int(sys.argv[2]), int(os.environ.get("BENCH_REPEATS", "3")))
        return
    rows = http_rows()
    for row in rows:
        print(f"{row['measure']}: {row['crm']} vs {row['base']} | ratio {row['ratio']:.2f} (goal {row['goal']})")
    rows += report_rows()
    write_section(rows)
    return rows


if __name__ == "__main__":
    main()
