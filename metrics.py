"""Prometheus metrics (prometheus-client): declared once here, counted where things happen, served by
``GET /metrics`` (controllers/metrics.py, which adds the figures read from the database and the broker at
scrape time).

Multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set, every process (each gunicorn worker, each
Celery worker process) writes its counters to its own file in that directory and ``/metrics`` adds them
all up, so a scrape that lands on any gunicorn worker reports the whole deployment. prometheus-client
chooses the mode when it is first imported, so the variable must be in the environment before that:
gunicorn's master sets it (``gunicorn.conf.py``: a fresh directory when ``METRICS_TOKEN`` is set and
none is given) and its workers inherit it; Celery processes count into the web's figures when they are
given the same directory (one host, or a shared volume as in compose.yaml). Without the variable (the
single-process development server, tests) the counters live in the process.

Leaf module: it imports nothing of the project's, so the engine, the error handlers and the request
hooks all record through it.
"""
import time

from flask import g, request
from prometheus_client import Counter, Histogram

PREFIX = "crm"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Histogram(f"{PREFIX}_http_request_duration_seconds",
                     "HTTP requests answered, by method, route template and status, with their latency",
                     ["method", "route", "status"], buckets=LATENCY_BUCKETS)
MESSAGES = Counter(f"{PREFIX}_messages", "Messages (campaigns' and flows') by outcome: handed_off to the vendor, or "
                   "failed before it took them (each delivery record counted once, when its state is written); "
                   "capped: not sent for FREQUENCY_CAP (a campaign's capped record also counts as failed)",
                   ["outcome"])
DEFERRED = Counter(f"{PREFIX}_messages_deferred", "Sends put off, by reason: rate_limit (waited for the "
                   "campaign's pace), vendor_unavailable (a retry after the vendor's temporary error), local_time (planned "
                   "for the recipient's own time of day), quiet_hours (held until the recipient's quiet hours end)",
                   ["reason"])
RECEIPTS = Counter(f"{PREFIX}_receipts", "Delivery receipts by the status they report and what they did: "
                   "applied (changed a record), unchanged (already applied or final), unknown (no such "
                   "message)", ["status", "result"])
COMPLAINTS = Counter(f"{PREFIX}_complaints", "Spam complaints recorded (the first one per message)")
IMPORT_ROWS = Counter(f"{PREFIX}_import_rows", "CSV import rows committed, by import type and outcome",
                      ["type", "outcome"])
DATABASE_ERRORS = Counter(f"{PREFIX}_database_errors", "Operations that found the database unreachable, by "
                          "where: request (answered 503), task (retried), beat", ["where"])

HANDED_OFF, FAILED = "handed_off", "failed"


def init_app(app):
    """Observe every answered request, labelled with its route's template (never the raw path: ids would
    make a series per customer). Timed from ``g.request_started``, the clock the request log starts
    first thing (logs.init_request_logging), so nothing is timed twice."""

    @app.after_request
    def observe(response):
        started = g.get("request_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            REQUESTS.labels(request.method, rule, str(response.status_code)).observe(time.perf_counter() - started)
        return response
