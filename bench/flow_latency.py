"""Trigger to hand-off: an order created over HTTP → the thank-you flow's message accepted by the vendor.

    ./scripts/bench.sh flows-latency     # BENCH_FLOW_RATES orders/s (default 8 and 50), BENCH_FLOW_SECONDS (30) each

The production shape, as separate processes: gunicorn (two workers) and a Celery worker (prefork, two
processes) and beat on the real RabbitMQ, the MongoDB stand-in over the wire, an SMTP server (aiosmtpd)
as the vendor, which notes when each message arrives. An open-loop client posts one order per customer at
the rate (each order on its own schedule, whatever the earlier ones took) to ``POST /api/orders``; the
flow (``order.created`` → send) enters the customer in the request and kicks a run job onto the broker.

Printed per rate: orders and the rate reached; the latency from each order's request to its message's
arrival at the SMTP server, median and p99, and the part after the order's response; the order request's
own time (the same run's baseline: what the client waits for anyway) and the ratio flow latency ÷ order
request at the median. Every order must get exactly one message. The stand-in serves one operation at a
time and reads a whole collection per query, so it sustains fewer orders per second than 50: the rate
reached says so, and the request's own time then holds the queue. On a real MongoDB:
``MONGO_URI=mongodb://host/crm_bench_latency ./scripts/bench.sh flows-latency`` (an empty database,
dropped afterwards).
"""
import os
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pymongo
import requests

from tests.processes import VENV_BIN, Gunicorn, MongoStandIn, Process, base_env, wait_until

RABBITMQ = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")


class _Inbox:
    """The vendor: the arrival time of each message, by recipient."""

    def __init__(self):
        self.lock, self.arrived = threading.Lock(), {}

    async def handle_DATA(self, server, session, envelope):
        now = time.time()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt, []).append(now)
        return "250 Message accepted"

    def count(self):
        with self.lock:
            return sum(len(times) for times in self.arrived.values())


def _real_mongodb():
    """``MONGO_URI`` when set: a real MongoDB, whose figure at 50 orders/s the stand-in cannot give. Its
    database must hold nothing (the bench fills it, then drops it); None: run on a stand-in."""
    uri = os.environ.get("MONGO_URI")
    if not uri:
        return None
    if not pymongo.uri_parser.parse_uri(uri)["database"]:
        raise SystemExit("MONGO_URI must name the bench's database (mongodb://host/crm_bench_latency)")
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        database = client.get_default_database()
        if any(database[name].estimated_document_count() for name in database.list_collection_names()):
            raise SystemExit(f"MONGO_URI's database {database.name!r} holds documents: give the bench an empty one")
    return uri


def _percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(rate=50, seconds=30):
    from aiosmtpd.controller import Controller
    from kombu import Connection, Queue

    from tests.processes import free_port

    n = int(rate * seconds)
    inbox = _Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    queue = f"crm-bench-{uuid.uuid4().hex[:8]}"
    processes, uri = [], _real_mongodb()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if uri is None:
                database = MongoStandIn(tmp).start()
                processes.append(database)
                uri = database.uri("crm_bench_latency")
            env = base_env(MONGO_URI=uri, APP_ENV="development",
                           SESSION_SECRET=uuid.uuid4().hex * 2, LOGIN_DISABLED="true", LOG_LEVEL="WARNING",
                           RATELIMIT_ENABLED="false", CELERY_BROKER_URL=RABBITMQ, CELERY_QUEUE=queue,
                           VENDOR="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=smtp.port, SMTP_FROM="news@crm.example")
            web = Gunicorn(env, tmp, workers=2).start()
            processes.append(web)
            celery = [str(VENV_BIN / "celery"), "-A", "worker"]
            processes.append(Process("worker", [*celery, "worker", "-Q", f"{queue},{queue}-imports", "--pool",
                                                "prefork", "--concurrency", "2", "--without-gossip",
                                                "--without-mingle", "--loglevel", "WARNING"], env, tmp).start())
            processes.append(Process("beat", [*celery, "beat", "-s", f"{tmp}/beat", "--pidfile=", "--loglevel",
                                              "WARNING"], env, tmp).start())
            base, session = web.base, requests.Session()
            emails = [f"c{i}@bench.example" for i in range(n)]
            for start in range(0, n, 1000):
                created = session.post(f"{base}/api/customers/bulk", timeout=300, json=[
                    {"name": f"Customer {i}", "email": email} for i, email in enumerate(emails[start:start + 1000])])
                assert created.status_code in (200, 201), created.text[:300]
            with pymongo.MongoClient(uri) as client:
                customers = client.get_default_database().customers.find({}, {"email": 1})
                ids = {c["email"]: str(c["_id"]) for c in customers}
            flow = session.post(f"{base}/api/flows", json={
                "name": "Thanks", "trigger": {"type": "order.created"},
                "steps": [{"type": "send", "subject": "Thank you", "text": "For your order."}]}).json()["_id"]
            assert session.post(f"{base}/api/flows/{flow}/activate").status_code == 200
            time.sleep(3)  # the worker has connected and the activation's run is done
            requested, answered = {}, {}
            local = threading.local()

            def order(i):
                local.session = getattr(local, "session", None) or requests.Session()
                delay = started + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                requested[emails[i]] = time.time()
                response = local.session.post(f"{base}/api/orders", json={"customerId": ids[emails[i]], "amount": 10},
                                              timeout=60)
                answered[emails[i]] = time.time()
                assert response.status_code == 201, response.text[:300]

            started = time.time() + 0.5
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(order, range(n)))
            sent_s = max(requested.values()) - min(requested.values())
            wait_until(lambda: inbox.count() >= n, 300, interval=0.1, what="every thank-you message")
            time.sleep(2)  # any second message would arrive now
        finally:
            for process in reversed(processes):
                process.stop()
            smtp.stop()
            if os.environ.get("MONGO_URI"):
                with pymongo.MongoClient(uri) as client:
                    client.drop_database(client.get_default_database())
            with Connection(RABBITMQ) as connection:
                for name in (queue, f"{queue}-imports"):
                    Queue(name, channel=connection.channel()).delete()
    latency = [inbox.arrived[email][0] - requested[email] for email in emails]
    request = [answered[email] - requested[email] for email in emails]
    after = [inbox.arrived[email][0] - answered[email] for email in emails]
    return {"n": n, "rate": rate, "reached": (n - 1) / sent_s if sent_s else float(n),
            "messages": inbox.count(), "one_each": all(len(inbox.arrived.get(e, ())) == 1 for e in emails),
            "median_ms": statistics.median(latency) * 1e3, "p99_ms": _percentile(latency, 0.99) * 1e3,
            "order_median_ms": statistics.median(request) * 1e3, "order_p99_ms": _percentile(request, 0.99) * 1e3,
            "after_median_ms": statistics.median(after) * 1e3, "after_p99_ms": _percentile(after, 0.99) * 1e3}


def report(row):
    print(f"{row['n']:,} orders at {row['rate']:g}/s (reached {row['reached']:.1f}/s): latency median "
          f"{row['median_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms (after the order's response: median "
          f"{row['after_median_ms']:.0f} ms, p99 {row['after_p99_ms']:.0f} ms) | the order request itself: median "
          f"{row['order_median_ms']:.0f} ms, p99 {row['order_p99_ms']:.0f} ms | ratio at the median "
          f"{row['median_ms'] / row['order_median_ms']:.2f} | messages {row['messages']:,}, exactly one each: "
          f"{row['one_each']}")
    return row


def main():
    """One row per rate in ``BENCH_FLOW_RATES`` (orders/s, default 8 and 50: what the stand-in sustains,
    and the issue's rate), each for ``BENCH_FLOW_SECONDS`` (30)."""
    rates = [float(x) for x in os.environ.get("BENCH_FLOW_RATES", "8,50").split(",") if x.strip()]
    seconds = float(os.environ.get("BENCH_FLOW_SECONDS", "30"))
    print("== order created -> the flow's message at the vendor: gunicorn (2), a Celery worker (2) and beat on "
          "RabbitMQ, " + ("MONGO_URI's MongoDB" if os.environ.get("MONGO_URI") else "the MongoDB stand-in") + ", SMTP")
    return [report(measure(rate, seconds)) for rate in rates]
