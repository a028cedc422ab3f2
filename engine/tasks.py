"""Celery tasks: thin wrappers that run :mod:`engine.jobs` on a worker.

Task names (``crm.*``) are the wire contract between web servers and workers; the same jobs run on
the in-process pool when no broker is configured (:mod:`engine.runner`).
"""
from celery import shared_task
from flask import current_app
from pymongo.errors import ConnectionFailure

import metrics
from engine import jobs, runner, sender
from engine.scheduler import OutageLog

_beat_outage = OutageLog("scheduled-campaign sweep")


def _run(task, name, *args, **kwargs):
    """Run job ``name``; an exception is retried with backoff when :func:`engine.jobs.may_retry` says
    so, else the job's campaign or import is failed with it (:func:`engine.jobs.give_up`)."""
    try:
        return jobs.BY_NAME[name](*args, **kwargs)
    except Exception as exc:
        attempt = task.request.retries
        if isinstance(exc, ConnectionFailure):
            metrics.DATABASE_ERRORS.labels("task").inc()
        if jobs.may_retry(exc, attempt):
            raise task.retry(exc=exc, countdown=jobs.backoff(attempt), max_retries=None)
        jobs.give_up(name, args, exc)
        raise


def _deliver_as_task(campaign_id, token):
    runner.submit("crm.deliver_batch", campaign_id, token)


@shared_task(name="crm.run_campaign", bind=True, acks_late=True)
def run_campaign(self, campaign_id, retry=None):
    """Continue a sending campaign; each batch becomes a ``crm.deliver_batch`` task."""
    return _run(self, "crm.run_campaign", campaign_id, retry, deliver=_deliver_as_task)


@shared_task(name="crm.plan_campaign", bind=True, acks_late=True)
def plan_campaign(self, campaign_id):
    """Plan a campaign whose planning stalled."""
    return _run(self, "crm.plan_campaign", campaign_id, deliver=_deliver_as_task)


@shared_task(name="crm.deliver_batch", bind=True, acks_late=True, max_retries=None)
def deliver_batch(self, campaign_id, token):
    """Send one batch; come back after the lease for a batch another (possibly dead) worker holds."""
    outcome = _run(self, "crm.deliver_batch", campaign_id, token, worker=self.request.id)
    if outcome == sender.HELD:
        raise self.retry(countdown=current_app.config["DISPATCH_CLAIM_LEASE_S"])
    return outcome


@shared_task(name="crm.run_import", bind=True, acks_late=True, max_retries=None)
def run_import(self, job_id):
    """Run (or resume from its last committed chunk) a CSV import; come back after the lease when
    another worker holds it."""
    status = _run(self, "crm.run_import", job_id)
    if status is None:
        raise self.retry(countdown=current_app.config["IMPORT_LEASE_S"])
    return status


@shared_task(name="crm.rfm_pass", bind=True, acks_late=True)
def rfm_pass(self):
    """The periodic RFM pass (scores and segments of every customer who ordered)."""
    _run(self, "crm.rfm_pass")


@shared_task(name="crm.run_flows", bind=True, acks_late=True)
def run_flows(self):
    """Run the flow steps that are due (claimed with a lease: any number of these may run at once)."""
    _run(self, "crm.run_flows")


@shared_task(name="crm.flows_sweep", bind=True, acks_late=True)
def flows_sweep(self):
    """Enter customers into segment, win-back and anniversary flows; then run them."""
    _run(self, "crm.flows_sweep")


@shared_task(name="crm.fold_tallies", bind=True, acks_late=True)
def fold_tallies(self):
    """Fold recorded opens and clicks into their campaigns' tallies (engine.tallies)."""
    _run(self, "crm.fold_tallies")


@shared_task(name="crm.start_due_campaigns")
def start_due_campaigns():
    """Beat: start scheduled campaigns whose time has come, and re-queue stalled work."""
    try:
        started, _, _ = jobs.sweep(runner.submit)
    except ConnectionFailure as exc:
        metrics.DATABASE_ERRORS.labels("beat").inc()
        _beat_outage.failed(exc)
        return 0
    _beat_outage.succeeded()
    return started
