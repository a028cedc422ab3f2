"""A welcome flow at a shop's size: ``./scripts/bench.sh flows`` (sizes: ``BENCH_FLOWS``, default 2,000
and 10,000), then the trigger-to-hand-off latency (:mod:`bench.flow_latency`); writes its section of
``bench/RESULTS.md``.

On the MongoDB stand-in, for each size: the customers exist; the flow (``customer.created`` → send)
takes them 1,000 at a time as a bulk write's hook does (one read of their latest entries and one
``insert_many`` per 1,000), then two workers run the due enrolments at once (two threads, each
claiming batches with its lease) until none is left: that is the flow's time. The same-run baseline
sends the same customers one campaign through the engine (the planner and the batch sender). Printed:
seconds, the ratio campaign / flow, the cost per customer at the larger size over the smaller (1.0 =
linear), and the exactly-once checks: messages the vendor took, distinct ones, delivery records,
completed enrolments.
"""
import os
import threading
import time

from bench import print_growth


def _run_flow(n):
    from controllers.flows import create_flow, transition
    from engine import flows, ingest
    from models import Customer, FlowEnrolment

    flow = create_flow({"name": "Welcome", "trigger": {"type": "customer.created"}, "steps": [
        {"type": "send", "subject": "Welcome, {{ firstName | default(\"there\") }}", "text": "Hello {{ name }}"}]})
    for start in range(0, n, 1000):  # the customers, before the flow is active (it is measured alone)
        ingest.upsert_customers([{"name": f"Customer {i}", "email": f"c{i}@example.com"}
                                 for i in range(start, min(n, start + 1000))])
    flow = transition(str(flow.pk), "activate")
    import engine
    from flask import current_app
    app = current_app._get_current_object()
    assert engine.wait_idle(app, timeout=60)
    started = time.perf_counter()
    pks = [c.pk for c in Customer.objects.only("id").order_by("id")]
    for start in range(0, n, 1000):  # entering: as a bulk write's hook does, 1,000 at a time
        flows.enter(flow, [(pk, None, None) for pk in pks[start:start + 1000]])
    entered = time.perf_counter() - started

    def worker():
        with app.app_context():
            while flows.run_due(limit=int(os.environ.get("BENCH_FLOW_BATCH", "0")) or None):
                pass

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.wait_idle(app, timeout=3600)  # a run that handed on to the pool (its time budget)
    with app.app_context():
        while flows.run_due():
            pass
    took = time.perf_counter() - started
    return {"enter_s": entered, "flow_s": took, "completed": FlowEnrolment.objects(status="completed").count(),
            "customers": Customer.objects.count()}


def _run_campaign(n):
    import engine
    from controllers.campaigns import create_campaign
    from flask import current_app

    campaign = create_campaign({"name": "Baseline", "rules": [], "logical_operator": "AND", "text": "Hello {{ name }}",
                                "subject": "Welcome"})
    started = time.perf_counter()
    engine.start(campaign.pk)
    assert engine.wait_idle(current_app, timeout=3600)
    return time.perf_counter() - started


def measure(sizes):
    from bench.__main__ import standin_app

    rows = []
    with standin_app("crm_bench_flows") as (app, db):
        import engine
        from models import ALL_DOCUMENTS, Delivery

        for n in sizes:
            db.client.drop_database(db.name)
            for document in ALL_DOCUMENTS:
                document.ensure_indexes()
            vendor = engine.vendor(app)
            vendor.sent.clear()
            row = {"n": n, **_run_flow(n)}
            flow_sent = list(vendor.sent)
            row.update(handed=len(flow_sent), distinct=len(set(flow_sent)), records=Delivery.objects.count())
            row["campaign_s"] = _run_campaign(n)
            rows.append(row)
    return rows


def report(rows):
    print("== A welcome flow (a send) on the MongoDB stand-in, two workers / the same customers as one campaign")
    for row in rows:
        print(f"n={row['n']:>7,}: entering {row['enter_s']:.1f}s, entering and sending {row['flow_s']:.1f}s "
              f"({row['flow_s'] / row['n'] * 1e3:.1f} ms per customer) | campaign {row['campaign_s']:.1f}s | "
              f"ratio campaign/flow {row['campaign_s'] / row['flow_s']:.2f} | vendor took {row['handed']:,} "
              f"({row['distinct']:,} distinct), records {row['records']:,}, completed {row['completed']:,} "
              f"of {row['customers']:,}")
    print_growth(rows, "flow_s", "n")


MARK_START, MARK_END = "<!-- flows: bench/flows.py -->", "<!-- end of flows -->"


def write_section(rows, latency):
    """Both figures of the lifecycle flows as their own section of ``bench/RESULTS.md``."""
    from datetime import datetime, timezone

    from bench import TABLE_HEAD, replace_section, table_row

    lines = ["## Lifecycle flows", "",
             f"Written by `./scripts/bench.sh flows` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Throughput: "
             "a welcome flow's sends (two workers) against one campaign to the same customers, on the MongoDB "
             "stand-in (ratio: campaign time ÷ flow time, higher is better). Latency: the production shape "
             "(gunicorn, a Celery worker and beat on RabbitMQ, the stand-in, an SMTP server), an order created "
             "over HTTP to its thank-you message's arrival at the SMTP server, beside the order request's own "
             "time (ratio: flow latency ÷ request, at the median).", "", *TABLE_HEAD]
    for row in rows:
        lines.append(table_row({
            "measure": f"flow sends, {row['n']:,} enrolments", "crm": f"{row['flow_s']:.1f} s",
            "baseline": "one campaign, same customers", "base": f"{row['campaign_s']:.1f} s",
            "ratio": row["campaign_s"] / row["flow_s"], "goal": "≥ 0.5"}))
    for row in latency:
        lines.append(table_row({
            "measure": f"order → flow message, {row['n']:,} orders at {row['rate']:g}/s (reached "
                       f"{row['reached']:.1f}/s), one message each: {row['one_each']}",
            "crm": f"median {row['median_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms (after the response: "
                   f"{row['after_median_ms']:.0f} / {row['after_p99_ms']:.0f} ms)",
            "baseline": "the order request", "base": f"median {row['order_median_ms']:.0f} ms, p99 "
                                                    f"{row['order_p99_ms']:.0f} ms",
            "ratio": row["median_ms"] / row["order_median_ms"], "goal": "none set (measured)"}))
    replace_section("flows", MARK_START, MARK_END, lines)


def main():
    from bench import flow_latency

    sizes = [int(x) for x in os.environ.get("BENCH_FLOWS", "2000,10000").split(",") if x.strip()]
    rows = measure(sizes)
    report(rows)
    write_section(rows, flow_latency.main())
