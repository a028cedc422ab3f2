"""Celery tasks: thin wrappers that run the dispatch steps (see controllers/dispatch.py)."""
from celery import shared_task

from controllers import dispatch
from controllers.campaigns import start_due_campaigns as _start_due


@shared_task(name="crm.plan_campaign", acks_late=True)
def plan_campaign(campaign_id):
    """Plan a sending campaign's recipients; each batch becomes a ``deliver_batch`` task."""
    dispatch.plan(campaign_id, lambda cid, token: deliver_batch.delay(cid, token))


@shared_task(name="crm.deliver_batch", bind=True, acks_late=True, max_retries=20)
def deliver_batch(self, campaign_id, token):
    """Send one batch; come back later for records another (possibly dead) worker still holds."""
    from flask import current_app

    from services.vendors import VendorUnavailable

    try:
        held_elsewhere = dispatch.deliver_batch(campaign_id, token, worker=self.request.id)
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
    started = _start_due()
    requeue_stalled()
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
