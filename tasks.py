"""Celery tasks: thin wrappers that run the dispatch steps (see controllers/dispatch.py)."""
from celery import shared_task
from pymongo.errors import ConnectionFailure

from controllers import dispatch
from controllers.campaigns import start_due_campaigns as _start_due
from services.scheduler import OutageLog

_beat_outage = OutageLog("scheduled-campaign sweep")


def _after_outage(task, exc):
    """Come back once the database answers again (never in-process, where nothing would wait)."""
    if task.request.is_eager:
        raise exc
    raise task.retry(exc=exc, countdown=min(60, 2 ** task.request.retries), max_retries=None)


@shared_task(name="crm.plan_campaign", bind=True, acks_late=True)
def plan_campaign(self, campaign_id):
    """Plan a sending campaign's recipients; each batch becomes a ``deliver_batch`` task."""
    try:
        dispatch.plan(campaign_id, lambda cid, token: deliver_batch.delay(cid, token))
    except ConnectionFailure as exc:
        _after_outage(self, exc)


@shared_task(name="crm.deliver_batch", bind=True, acks_late=True, max_retries=20)
def deliver_batch(self, campaign_id, token):
    """Send one batch; come back later for records another (possibly dead) worker still holds."""
    from flask import current_app

    from services.vendors import VendorUnavailable

    try:
        held_elsewhere = dispatch.deliver_batch(campaign_id, token, worker=self.request.id)
    except ConnectionFailure as exc:
        _after_outage(self, exc)
    except VendorUnavailable as exc:
        if self.request.is_eager:  # no worker to come back later: stop, "retry-failed" resumes it
            dispatch.fail(campaign_id, f"Vendor unavailable: {exc}")
            return
        raise self.retry(exc=exc, countdown=min(300, 5 * 2 ** self.request.retries))
    if held_elsewhere and not self.request.is_eager:
        raise self.retry(countdown=current_app.config["DISPATCH_CLAIM_LEASE_S"])


@shared_task(name="crm.redispatch", acks_late=True)
def redispatch(campaign_id):
    """Queue every batch of a campaign that still has PENDING records (resume, retry-failed)."""
    for token in dispatch.pending_batches(campaign_id):
        deliver_batch.delay(campaign_id, token)


@shared_task(name="crm.start_due_campaigns")
def start_due_campaigns():
    """Beat: start scheduled campaigns whose time has come, and re-queue stalled work."""
    try:
        started = _start_due()
        requeue_stalled()
    except ConnectionFailure as exc:
        _beat_outage.failed(exc)
        return 0
    _beat_outage.succeeded()
    return started


def requeue_stalled():
    """Plan again or deliver again whatever a lost task or a dead worker left behind."""
    replan, batches = dispatch.stalled_work()
    for campaign_id in replan:
        plan_campaign.delay(campaign_id)
    for campaign_id, tokens in batches.items():
        for token in tokens:
            deliver_batch.delay(campaign_id, token)
    return len(replan), sum(len(tokens) for tokens in batches.values())
