"""The engine's jobs, the same code whether a Celery worker or the in-process pool runs them.

``deliver`` is how a job hands on a batch: as a new task with a broker, inline on the same pool
thread without one (one thread per campaign, so pacing never holds more than one).
"""
from bson import ObjectId

from engine import control, imports, planner, sender, store


def run_campaign(campaign_id, retry=None, deliver=None):
    """Continue a sending campaign: (for retry-failed, ``retry`` naming that request) make its
    failures PENDING again, deliver every batch that has PENDING records, then plan the rest."""
    deliver = deliver or deliver_inline
    pk = ObjectId(campaign_id)
    if retry:
        store.requeue_failed(pk, retry)
    for token in store.pending_batches(pk):
        deliver(campaign_id, token)
    planner.plan(campaign_id, deliver)
    control.finish_if_done(pk)


def plan_campaign(campaign_id, deliver=None):
    """Plan (again) a campaign whose planning stalled."""
    planner.plan(campaign_id, deliver or deliver_inline)


def deliver_inline(campaign_id, token):
    """Send one batch now, on this thread."""
    return sender.deliver_batch(campaign_id, token)


def sweep(submit):
    """Start due scheduled campaigns and re-queue stalled work through ``submit(name, *args)``;
    returns ``(started, replanned, batches re-queued)``."""
    started = control.start_due()
    replan, batches = sender.stalled_work()
    for campaign_id in replan:
        submit("crm.plan_campaign", campaign_id)
    for campaign_id, tokens in batches.items():
        for token in tokens:
            submit("crm.deliver_batch", campaign_id, token)
    for job_id in imports.stale_jobs():  # an import whose worker died resumes from its last chunk
        submit("crm.run_import", job_id)
    return started, len(replan), sum(len(tokens) for tokens in batches.values())


BY_NAME = {"crm.run_campaign": run_campaign, "crm.plan_campaign": plan_campaign,
           "crm.deliver_batch": deliver_inline, "crm.run_import": imports.run_import}
