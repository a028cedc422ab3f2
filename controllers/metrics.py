"""``GET /metrics``: the counters every process keeps (:mod:`metrics`), and figures read at scrape time
from the database (campaigns and imports by status) and the broker (messages waiting per queue)."""
import hmac
import logging

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from pymongo.errors import PyMongoError

import metrics
from errors import ApiError
from models import Campaign, ImportJob
from models.campaign import STATUSES as CAMPAIGN_STATUSES
from models.import_job import STATUSES as IMPORT_STATUSES
from services import queue

log = logging.getLogger(__name__)


def check_token(config, authorization):
    """404 when metrics are off (no ``METRICS_TOKEN``), 401 unless ``authorization`` is its bearer."""
    token = config.get("METRICS_TOKEN")
    if not token:
        raise ApiError(404, "Not found")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "Metrics need the METRICS_TOKEN as a bearer token")


def exposition(app):
    """The text Prometheus scrapes."""
    if app.config.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # every process's files, added up
    else:
        counted = REGISTRY
    return generate_latest(_Both(counted, _Current(app)))


class _Both:
    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


class _Current:
    """Gauges read when scraped. A database or broker that does not answer leaves its gauges out (and
    counts a database error); the counters are still served."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        try:
            yield _by_status("crm_campaigns", "Campaigns by status", Campaign, CAMPAIGN_STATUSES)
            yield _by_status("crm_import_jobs", "CSV import jobs by status", ImportJob, IMPORT_STATUSES)
        except PyMongoError as exc:
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            metrics.DATABASE_ERRORS.labels("metrics").inc()
        up = GaugeMetricFamily("crm_broker_up", "1 when the broker answered this scrape (absent without one)")
        if queue.broker_configured(self.app):
            try:
                depths = queue.depths(self.app)
            except Exception as exc:  # any broker failure: report it down, never fail the scrape
                log.warning("metrics: broker unavailable (%s)", type(exc).__name__)
                up.add_metric([], 0)
            else:
                up.add_metric([], 1)
                waiting = GaugeMetricFamily("crm_queue_messages", "Tasks waiting in each queue", labels=["queue"])
                for name, count in sorted(depths.items()):
                    waiting.add_metric([name], count)
                yield waiting
            yield up


def _by_status(name, documentation, document, statuses):
    counts = {row["_id"]: row["n"] for row in document._get_collection().aggregate(
        [{"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in statuses:
        family.add_metric([status], counts.get(status, 0))
    return family
