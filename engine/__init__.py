"""The campaign engine: planning, claiming, sending, pacing, vendors, templates, receipts, the Celery
tasks and the scheduler, apart from the HTTP layer (as listmonk keeps its campaign manager apart from
its handlers). Controllers use this face only; nothing here imports controllers or routes.

- :func:`start`, :func:`pause`, :func:`resume`, :func:`cancel`, :func:`retry_failed` (or :func:`act`
  with an action name): state changes, each one conditional update; starting ones queue one job and
  return at once (:class:`QueueUnavailable` when the broker refuses it: nothing changed).
- :func:`stats`: counts by delivery status, computed by the database.
- :func:`init_app`: the app's vendors and (without a broker) its background pool.
"""
import threading
import time

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app

from engine import receipts, reports, store
from engine.control import (
    ACTIONS,
    STARTS_WORK,
    CampaignNotFound,
    InvalidTransition,
    NotAnAbTest,
    QueueUnavailable,
    act,
    decide,
    start_due,
)
from engine.audience import audience_query
from engine.runner import Pool
from engine.content import ContentProblem, preview
from engine.content import prepare as prepare_content
from engine.sender import send_tests
from engine.tracking import track_click, track_open
from engine.templates import CUSTOMER_FIELDS, PLACEHOLDERS, TemplateProblem, check_template
from engine.vendors import Vendors
from models.base import utcnow
from services.queue import broker_configured

EXTENSION = "engine"

__all__ = [
    "ACTIONS", "CUSTOMER_FIELDS", "PLACEHOLDERS", "STARTS_WORK", "CampaignNotFound", "ContentProblem", "InvalidTransition",
    "NotAnAbTest", "decide",
    "QueueUnavailable", "TemplateProblem", "act", "audience_query", "cancel", "check_template",
    "init_app", "note_unsubscribed", "pause", "prepare_content", "preview", "receipts", "reports", "send_tests", "track_click", "track_open", "resume", "retry_failed", "start", "start_due", "stats",
    "stop", "vendor", "wait_idle",
]


class Engine:
    """Per-app engine state (``app.extensions["engine"]``)."""

    def __init__(self, app):
        self.stopping = threading.Event()  # set by stop(): running batches and plans end at once
        self.vendors = Vendors()
        embedded = not broker_configured(app)
        self.pool = Pool(app, app.config["ENGINE_THREADS"], "engine") if embedded else None
        # imports on threads of their own: a large file never delays a campaign's batches
        self.import_pool = Pool(app, app.config["IMPORT_THREADS"], "imports") if embedded else None

    def pools(self):
        return [pool for pool in (self.pool, self.import_pool) if pool is not None]

    def vendor(self, config):
        """The vendor ``config`` names."""
        return self.vendors.for_config(config)


def init_app(app):
    """Attach the engine to ``app``."""
    app.extensions[EXTENSION] = Engine(app)


def start(campaign_pk):
    """Start sending (from draft or scheduled)."""
    return act(campaign_pk, "send")


def pause(campaign_pk):
    """Pause: running batches stop within ``ENGINE_CONTROL_CHECK_S`` or one message."""
    return act(campaign_pk, "pause")


def resume(campaign_pk):
    """Resume a paused campaign exactly where it stopped."""
    return act(campaign_pk, "resume")


def cancel(campaign_pk):
    """Cancel for good: queued batches are dropped, running ones stop."""
    return act(campaign_pk, "cancel")


def retry_failed(campaign_pk):
    """Send again to the recipients that failed so far."""
    return act(campaign_pk, "retry-failed")


def vendor(app=None):
    """The vendor the app's config names (tests and benchmarks read the simulated one)."""
    app = app or current_app
    return app.extensions[EXTENSION].vendor(app.config)


def wait_idle(app=None, timeout=None):
    """Embedded mode: wait until the background pool has finished every job (tests, CLI)."""
    app = app or current_app
    deadline = None if timeout is None else time.monotonic() + timeout
    for pool in app.extensions[EXTENSION].pools():
        if not pool.wait_idle(None if deadline is None else max(0.0, deadline - time.monotonic())):
            return False
    return True


def stop(app, timeout=None):
    """Stop the app's engine: running batches and plans end within ``ENGINE_CONTROL_CHECK_S``
    (what they had not sent stays PENDING, for the sweep or ``resume``); wait up to ``timeout`` for
    them, then stop the pool and the receipt reporters."""
    state = app.extensions[EXTENSION]
    state.stopping.set()
    for pool in state.pools():
        pool.wait_idle(timeout)
        pool.shutdown()
    state.vendors.close()


def stats(campaign):
    """A campaign's figures (:func:`engine.reports.figures`: counts that add up, ``pending + sent +
    delivered + failed + cancelled = total`` and ``total + suppressed = audienceSize``, before, during
    and after any action; opens, clicks, revenue) and its most common failure reasons.

    ``pending`` are the recipients still to be sent to: PENDING records and, while planning has not
    finished, the audience members it has not reached yet; a cancelled campaign has none, they are
    ``cancelled``. ``awaitingReceipts`` are the SENT records the vendor has not reported on yet
    (handed off, fate unknown). Once planned, ``audienceSize`` is exactly the members planning found.
    """
    return {**reports.figures([campaign])[campaign.pk], "failure_reasons": store.failure_reasons(campaign.pk)}


def note_unsubscribed(campaign_id, customer_pk):
    """The customer unsubscribed through ``campaign_id``'s link (its report counts it)."""
    try:
        campaign_pk = ObjectId(campaign_id)
    except (InvalidId, TypeError):
        return
    store.mark_unsubscribed(campaign_pk, customer_pk, utcnow())
