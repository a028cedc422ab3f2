"""Benchmarks: ratios against a baseline measured in the same run, on the same store; every figure is
printed and the table is written to ``bench/RESULTS.md``.

    ./scripts/bench.sh                       # everything, default sizes (about half an hour here)
    BENCH_WIRE=0 BENCH_AUDIENCE=10000 ./scripts/bench.sh    # quicker: no stand-in rows

1. HTTP with wrk on loopback (bench/http.py, bench/apps.py): ``GET /api/customers?per_page=50`` and
   ``POST /api/orders`` against bare Flask apps doing the same store work, and against the same bytes
   from memory; one gunicorn worker each, identical seeded data.
2. audience: the API's count for a 6-rule nested tree (validate + compile + count) divided by a bare
   ``count_documents`` of the compiled query, on N customers (BENCH_AUDIENCE, 100,000).
3. dispatch: N recipients through the simulated vendor (BENCH_DISPATCH, 10,000 and 100,000, embedded),
   as delivery records written per second, divided by a raw ``insert_many`` (batches of 500) of the
   same documents. Each side runs in its own process on the same data and reports its peak RSS.
4. pause: from the pause request to the last hand-off at 1,000 msgs/s, median of 10 (bench/pause.py),
   as a ratio to ENGINE_CONTROL_CHECK_S.
5. over the wire (unless BENCH_WIRE=0): the dispatch ratio on the MongoDB stand-in with indexes on
   both sides at BENCH_WIRE_DISPATCH (100,000) recipients; the CSV import of BENCH_IMPORT (100,000)
   customers against a raw insert_many, and its peak RSS for 10 and 50 MB files (bench/imports.py);
   and the outage figures (bench/outage.py).
6. the embedded store's lock (bench/lock.py): list pages from 4 threads with and without it.
7. the shop workload (bench/shop.py; ``./scripts/bench.sh shop`` runs it alone): BENCH_SHOP (10,000)
   customers, twice as many orders, a campaign to all and its receipts, a re-import, each step beside a
   raw baseline, on both stores, with the database round trips per item over the wire.
8. opens, clicks and reports (bench/tracking.py; ``./scripts/bench.sh tracking`` runs it alone): pixel
   and click requests/s against a bare Flask route doing the same update, and a campaign's report at
   BENCH_REPORT (100,000) deliveries and 300,000 events against one ``count_documents``.
"""
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _sizes(name, default):
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


def _app():
    from app import create_app

    return create_app({
        "APP_ENV": "testing", "TESTING": True, "LOG_LEVEL": "WARNING", "MONGO_DB": "crm_bench",
        "VENDOR_RECEIPTS": False, "SCHEDULER_ENABLED": False, "RATELIMIT_ENABLED": False,
    })


@contextlib.contextmanager
def standin_app(database_name):
    """The CRM app on a fresh MongoDB stand-in (memory engine), in an app context: ``(app, db)``; the
    database is dropped and the stand-in stopped afterwards."""
    from tests.processes import MongoStandIn

    with tempfile.TemporaryDirectory() as tmp:
        database = MongoStandIn(tmp, engine="memory").start()
        os.environ["MONGO_URI"] = database.uri(database_name)
        os.environ["MONGO_TIMEOUT_MS"] = "600000"
        try:
            app = _app()
            with app.app_context():
                import mongoengine

                db = mongoengine.get_db()
                yield app, db
                db.client.drop_database(db.name)
        finally:
            os.environ.pop("MONGO_URI", None)
            database.stop()


def _customers(n):
    return [{"name": f"Customer {i}", "email": f"c{i}@example.com", "totalSpend": float(i % 1000),
             "numVisits": i % 7, "tags": ["vip"] if i % 10 == 0 else []} for i in range(n)]


def _seed_customers(db, n):
    """Seed without a quadratic step: on mongomock, insert before the unique email index exists (it
    checks one by scanning on every insert); over the wire, create the indexes first (the stand-in
    builds a unique index on existing documents by comparing them pairwise)."""
    from models import Customer

    embedded = not os.environ.get("MONGO_URI")
    if not embedded:
        Customer.ensure_indexes()
    db[Customer._meta["collection"]].insert_many(_customers(n))
    if embedded:
        Customer.ensure_indexes()


def _rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dispatch_one(n, mode):
    """In a child process: ``dispatch`` n recipients, or ``insert`` the same records raw.

    Prints one JSON line with the elapsed time, peak RSS and the BSON size stored.
    """
    import bson
    import mongoengine

    from engine import planner, sender
    from models import Campaign, Customer, Delivery

    app = _app()
    with app.app_context():
        db = mongoengine.get_db()
        db.client.drop_database(db.name)
        embedded = not app.config.get("MONGO_URI")
        if embedded:
            # mongomock checks a unique index by scanning the collection on every insert (quadratic):
            # on the embedded store both sides run without indexes; with MONGO_URI both have them.
            Delivery._meta["auto_create_index"] = False
        else:
            Delivery.ensure_indexes()
        _seed_customers(db, n)
        campaign = Campaign(name="Bench", message="Hi {{firstName}}, you spent {{totalSpend}}",
                            rules={"op": "AND", "rules": []}, status="sending").save()
        rss_before = _rss_mb()
        started = time.perf_counter()
        if mode == "dispatch":
            planner.plan(str(campaign.pk), lambda cid, token: sender.deliver_batch(cid, token))
            assert Campaign.objects.get(pk=campaign.pk).status == "completed"
        elif mode == "two-writes":
            _two_writes(campaign, Customer._get_collection().find().sort("_id", 1), app)
        else:
            _insert_like_dispatch(campaign, Customer._get_collection().find().sort("_id", 1), app)
        elapsed = time.perf_counter() - started
        rss_peak = _peak_rss_mb()
        deliveries = Delivery._get_collection()
        assert deliveries.count_documents({"campaign": campaign.pk}) == n
        bson_bytes = sum(len(bson.encode(doc)) for doc in deliveries.find()) + sum(
            len(bson.encode(doc)) for doc in Customer._get_collection().find())
        db.client.drop_database(db.name)
    print(json.dumps({"n": n, "mode": mode, "store": "MongoDB wire protocol" if not embedded else "embedded (mongomock)",
                      "seconds": elapsed, "rss_before_mb": rss_before, "rss_peak_mb": rss_peak,
                      "bson_mb": bson_bytes / 2**20}))


def _insert_like_dispatch(campaign, customers, app):
    """The baseline: the same delivery documents (status SENT, as dispatch leaves them), raw insert_many."""
    from bson import ObjectId

    from engine.templates import render
    from models import Delivery
    from models.base import utcnow

    collection, batch, now = Delivery._get_collection(), [], utcnow()
    for customer in customers:
        delivery_id = ObjectId()
        batch.append({"_id": delivery_id, "campaign": campaign.pk, "customer": customer["_id"],
                      "email": customer["email"], "message": render(campaign.message, customer),
                      "status": "SENT", "vendorMessageId": f"<{delivery_id}@crm.local>", "attempts": 1,
                      "batch": "baseline", "createdAt": now, "sentAt": now})
        if len(batch) == 500:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)


def _two_writes(campaign, customers, app):
    """The floor of any design that records a send before it happens: the same records inserted
    PENDING, then each batch's range updated to SENT (raw: no reads, no sending, no rendering)."""
    from bson import ObjectId

    from models import Delivery
    from models.base import utcnow

    collection, batch, now = Delivery._get_collection(), [], utcnow()

    def write(docs):
        collection.insert_many(docs, ordered=False)
        collection.update_many({"batch": "floor", "status": "PENDING", "_id": {"$gte": docs[0]["_id"],
                                                                              "$lte": docs[-1]["_id"]}},
                               {"$set": {"status": "SENT", "sentAt": now}, "$inc": {"attempts": 1}})

    for customer in customers:
        delivery_id = ObjectId()
        batch.append({"_id": delivery_id, "campaign": campaign.pk, "customer": customer["_id"],
                      "email": customer["email"], "status": "PENDING", "vendorMessageId": f"<{delivery_id}@crm.local>",
                      "attempts": 0, "batch": "floor", "createdAt": now})
        if len(batch) == 500:
            write(batch)
            batch = []
    if batch:
        write(batch)


def _child(n, mode, env=None):
    out = subprocess.run([sys.executable, "-m", "bench", "--dispatch-one", str(n), mode], cwd=ROOT,
                         capture_output=True, text=True, check=False, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(lines[-1])


def audience(n, repeats=3):
    """The API path's count vs. a bare count_documents, on ``n`` customers."""
    import mongoengine

    from controllers.campaigns import audience_size
    from models import Customer
    from schemas.campaign import AudienceIn
    from segments import compile_rules

    body = {"logicalOperator": "AND", "rules": [
        {"field": "totalSpend", "operator": ">", "value": "100"},
        {"op": "OR", "rules": [
            {"field": "numVisits", "operator": "in", "value": "1,3,5"},
            {"field": "tags", "operator": "contains", "value": "vip"},
            {"op": "AND", "rules": [
                {"field": "emailDomain", "operator": "=", "value": "example.com"},
                {"field": "name", "operator": "startsWith", "value": "Customer 1"},
            ]},
        ]},
        {"field": "lastVisitDate", "operator": "notWithinLastDays", "value": "90"},
    ]}
    app = _app()
    with app.app_context():
        db = mongoengine.get_db()
        db.client.drop_database(db.name)
        _seed_customers(db, n)
        schema = AudienceIn()
        api, bare = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            data = schema.load(body)
            api_count = audience_size(data)
            api.append(time.perf_counter() - started)
            query = compile_rules(data["rules"], data["logical_operator"])
            started = time.perf_counter()
            bare_count = Customer._get_collection().count_documents(query)
            bare.append(time.perf_counter() - started)
            assert api_count == bare_count
        db.client.drop_database(db.name)
    api_s, bare_s = statistics.median(api), statistics.median(bare)
    return {"n": n, "matches": api_count, "api_s": round(api_s, 3), "count_documents_s": round(bare_s, 3),
            "ratio": round(api_s / bare_s, 3)}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--dispatch-one":
        dispatch_one(int(sys.argv[2]), sys.argv[3])
        return
    from bench import shop, tracking

    if sys.argv[1:] == ["shop"]:  # the shop workload alone: its section of RESULTS.md is rewritten
        shop.write_section(shop.main())
        return
    if sys.argv[1:] == ["tracking"]:  # opens, clicks and reports alone: their section is rewritten
        tracking.main()
        return
    if sys.argv[1:] == ["rfm"]:  # the RFM pass at scale, printed (RESULTS.md is left as it is)
        from bench import rfm

        rfm.main()
        return
    if sys.argv[1:] == ["flows"]:  # flow throughput and latency: their section of RESULTS.md is rewritten
        from bench import flows

        flows.main()
        return
    if sys.argv[1:] == ["flows-latency"]:  # order → flow message latency in the production shape, printed
        from bench import flow_latency

        flow_latency.main()
        return
    if sys.argv[1:] == ["http"]:  # the HTTP pairs alone, printed (RESULTS.md is left as it is)
        from bench import http

        http.report(http.measure())
        return
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    rows = []
    print("== HTTP on loopback with wrk: the CRM / bare Flask baselines, same gunicorn settings")
    from bench import http

    if http.wrk_available():
        rows += http.report(http.measure())
    else:
        print("wrk is not installed (scripts/bench.sh installs it with apt where it can): HTTP rows skipped")
    print("== audience count: API path / count_documents (goal: ratio <= 1.2)")
    for n in _sizes("BENCH_AUDIENCE", "100000"):
        r = audience(n, repeats=repeats)
        print(f"n={n:>8,}: {r['matches']:,} match; API {r['api_s']}s vs count_documents"
              f" {r['count_documents_s']}s | ratio {r['ratio']}")
        rows.append({"measure": f"audience count, {n:,} customers, nested rules (6 rules, 3 levels)",
                     "baseline": "`count_documents` of the compiled query", "goal": "≤ 1.2",
                     "crm": f"{r['api_s']} s", "base": f"{r['count_documents_s']} s",
                     "ratio": r["api_s"] / r["count_documents_s"]})
    print(f"== dispatch through the simulated vendor (goal: ratio >= 0.5; dispatcher memory < 150 MB);"
          f" median of {repeats} interleaved pair(s)")
    for n in _sizes("BENCH_DISPATCH", "10000,100000"):
        rows.append(dispatch_pairs(n, repeats))
    print("== pause latency on the in-process engine (goal: ratio <= 1)")
    from bench import pause

    result = pause.measure(rounds=int(os.environ.get("BENCH_PAUSE_ROUNDS", "10")))
    ratio = pause.report(result)
    rows.append({"measure": f"pause latency at {result['rate']:,} msgs/s (request → last hand-off), median of "
                            f"{len(result['latencies'])}", "baseline": "`ENGINE_CONTROL_CHECK_S`, the promised bound",
                 "goal": "≤ 1", "crm": f"{statistics.median(result['latencies']) * 1000:.0f} ms",
                 "base": f"{result['bound_s'] * 1000:.0f} ms", "ratio": ratio})
    if not os.environ.get("MONGO_URI"):
        print("== the embedded store's lock: list pages from 4 threads with it / without it (goal: >= 0.8)")
        from bench import lock

        rows.append(lock.report(lock.measure()))
    if os.environ.get("BENCH_WIRE", "1") != "0" and not os.environ.get("MONGO_URI"):
        rows += over_the_wire(repeats)
    elif os.environ.get("MONGO_URI"):  # a real MongoDB: the import rows run against it
        from bench import imports as import_bench

        for n in _sizes("BENCH_IMPORT", "100000"):
            rows += import_bench.report(import_bench.measure(dict(os.environ), n))
    write_results(rows)
    print("== the small shop's workload end to end (bench/shop.py)")
    shop.write_section(shop.main())
    print("== opens, clicks and the campaign report (bench/tracking.py)")
    tracking.main()
    print("== lifecycle flows: throughput and trigger-to-hand-off latency (bench/flows.py)")
    from bench import flows

    flows.main()


# Profiles (cProfile, same store) behind the rows that have missed their goal on this machine.
WHERE_THE_TIME_GOES = {
    "GET /api/customers": (
        "the store: mongomock copies all 1,000 documents and sorts them in Python on every page "
        "(`_copy_only_fields`, `bson_compare`: over 90% of either side's profile). Measured in-process, without "
        "HTTP, a request costs 19.2 ms in the CRM and 16.6 ms in the bare app (ratio 0.86): the CRM's own share "
        "is the API-key lookup and its user, the once-a-minute last-use update, the policy, 50 MongoEngine "
        "documents and their marshmallow dump. Under wrk with 4 threads the gap widens (0.71-0.81 across runs "
        "here): the CRM's extra store calls each take mongomock's collection lock and hold the GIL longer, so "
        "its threads overlap less. On MongoDB the sort is an index walk and the store's share shrinks."),
    "POST /api/orders": (
        "the same `update_one` + `insert_one`, plus the API-key lookups (key and user), the audit record the "
        "policy writes for every change (one more insert), validation and the dump; on mongomock every "
        "lookup scans its collection and the customer update re-checks the unique email index by scanning."),
    "campaign dispatch": (
        "dispatch writes every record twice (PENDING before sending, so a crash cannot lose track of a send, "
        "then its outcome) and reads it once (the claim), where the baseline writes it once; on mongomock "
        "every query and update scans the collection, so small runs are dominated by it, and on the stand-in "
        "an update copies each document and costs more than an insert. It is not a figure for MongoDB, "
        "where each per-batch operation is an indexed server-side update (`MONGO_URI=... ./scripts/bench.sh`). "
        "Over the wire the run also prints the ceiling: two raw writes per record (insert, then a range update) "
        "reach about 0.47 of `insert_many` on the stand-in, so any record-before-send design stays below 0.5 there."),
}


def _meets(row):
    goal = row["goal"]
    if goal.startswith("≥"):
        return row["ratio"] >= float(goal[1:])
    if goal.startswith("≤"):
        return row["ratio"] <= float(goal[1:])
    return True  # "report"


def write_results(rows):
    """``bench/RESULTS.md``: every row with its same-run baseline, the date and the machine."""
    import platform
    from datetime import datetime, timezone

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory = next((int(line.split()[1]) / 2**20 for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    lines = [
        "# Benchmark results",
        "",
        f"Written by `./scripts/bench.sh` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; machine: "
        f"{os.cpu_count()} × {cpu}, {memory:.0f} GiB, {platform.platform()}, Python {platform.python_version()}.",
        "Every ratio compares with a baseline measured in the same run on the same store; absolute",
        "figures move with the machine, ratios much less. See the README's Benchmarks section for how each",
        "is measured and where the time goes where a ratio misses its goal.",
        "",
        "| measure | CRM | baseline (same run) | baseline figure | ratio | goal |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}"
        cells = (row["measure"], row["crm"], row["baseline"], row["base"], ratio, row["goal"])
        lines.append("| " + " | ".join(cells) + " |")
    missed = [row for row in rows if row["ratio"] is not None and not _meets(row)]
    if missed:
        lines += ["", "## Where the time goes (rows that miss their goal)", ""]
        for row in missed:
            why = next((text for key, text in WHERE_THE_TIME_GOES.items() if key in row["measure"]),
                       "not profiled yet.")
            lines.append(f"- **{row['measure']}** ({row['ratio']:.2f}, goal {row['goal']}): {why}")
    path = os.path.join(ROOT, "bench", "RESULTS.md")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


def over_the_wire(repeats):
    """Dispatch and outage figures on the MongoDB stand-in, in separate processes; returns rows."""
    import tempfile

    from bench import outage
    from tests.processes import MongoStandIn, base_env

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        database = MongoStandIn(tmp, engine="memory").start()
        try:
            # the stand-in serves one operation at a time: a long one must not read as an outage
            env = base_env(MONGO_URI=database.uri("crm_bench"), MONGO_TIMEOUT_MS=600000)
            print("== over the wire on the MongoDB stand-in (mongoeco): dispatch / raw insert_many,"
                  " indexes on both sides; peak RSS is the dispatching process's")
            for n in _sizes("BENCH_WIRE_DISPATCH", "100000"):
                rows.append(dispatch_pairs(n, int(os.environ.get("BENCH_WIRE_REPEATS", "1")), env))
            print("== CSV import over the wire: rows/s ÷ raw insert_many (goal >= 0.4); peak RSS for a"
                  " 10 MB and a 50 MB file (goal: within 20 MB)")
            from bench import imports as import_bench

            for n in _sizes("BENCH_IMPORT", "100000"):
                rows += import_bench.report(import_bench.measure(env, n))
        finally:
            database.stop()
    print("== database outage through gunicorn (2 workers) on the stand-in")
    figures = outage.measure(rounds=repeats)
    outage.report(figures)
    return rows


def dispatch_pairs(n, repeats, env=None):
    """Interleaved dispatch/insert pairs in child processes; prints the median pair and all ratios."""
    pairs = sorted(((_child(n, "dispatch", env), _child(n, "insert", env)) for _ in range(repeats)),
                   key=lambda pair: pair[1]["seconds"] / pair[0]["seconds"])
    ratios = [b["seconds"] / d["seconds"] for d, b in pairs]
    d, b = pairs[len(pairs) // 2]
    print(f"n={n:>9,} [{d['store']}] dispatch {d['seconds']:.2f}s ({n / d['seconds']:,.0f} records/s)"
          f" | raw insert_many {b['seconds']:.2f}s ({n / b['seconds']:,.0f}/s)"
          f" | ratio {b['seconds'] / d['seconds']:.3f} (all: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"{'':13}peak RSS: dispatch {d['rss_peak_mb']:.1f} MB, raw insert {b['rss_peak_mb']:.1f} MB"
          f" (both from {d['rss_before_mb']:.1f} MB); BSON stored {d['bson_mb']:.1f} MB;"
          f" dispatcher's own share {max(p[0]['rss_peak_mb'] - p[1]['rss_peak_mb'] for p in pairs):+.1f} MB"
          f" (largest of the pairs)")
    if env is not None:  # over the wire: how far two writes per record can go at all on this store
        floor = _child(n, "two-writes", env)
        print(f"{'':13}two raw writes per record (insert PENDING, then a range update to SENT; nothing read, "
              f"nothing sent) {floor['seconds']:.2f}s: ratio {b['seconds'] / floor['seconds']:.3f}, the most a "
              f"design that records each send before it happens reaches on this store")
    return {"measure": f"campaign dispatch, {n:,} recipients, {d['store']}",
            "baseline": "raw `insert_many` of the same delivery records", "goal": "≥ 0.5",
            "crm": f"{n / d['seconds']:,.0f} records/s", "base": f"{n / b['seconds']:,.0f} records/s",
            "ratio": b["seconds"] / d["seconds"]}


if __name__ == "__main__":
    main()
