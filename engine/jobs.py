"""The engine's jobs, the same code whether a Celery worker or the in-process pool runs them.

``deliver`` is how a job hands on a batch: as a new task with a broker, inline on the same pool
thread without one (one thread per campaign, so pacing never holds more than one).

**No job strands its campaign or import.** Whoever runs a job (:mod:`engine.runner`'s pool,
:mod:`engine.tasks` on a worker) asks :func:`engine.runner.transient` about any exception: a temporary database or
broker error is retried with :func:`backoff` (``ENGINE_JOB_RETRIES`` times; a lost database
connection for as long as it lasts, since nothing can be recorded without it); any other error, or
one retried enough, ends the job at once through :func:`give_up`: the campaign or import is
``failed`` with ``lastError`` saying why (PENDING records wait for ``retry-failed``).
"""
import logging

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app
from pymongo.errors import ConnectionFailure

from engine import control, flows, imports, planner, rfm, sender, store, tallies
from engine.runner import transient

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 60


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


def deliver_inline(campaign_id, token, worker=None):
    """Send one batch now, on this thread (as ``worker``: a task's id)."""
    return sender.deliver_batch(campaign_id, token, worker=worker)


def sweep(submit):
    """Start due scheduled campaigns and re-queue stalled work through ``submit(name, *args)``;
    returns ``(started, replanned, batches re-queued)``."""
    started = control.start_due()
    control.decide_due()
    replan, batches = sender.stalled_work()
    for campaign_id in replan:
        submit("crm.plan_campaign", campaign_id)
    for campaign_id, tokens in batches.items():
        for token in tokens:
            submit("crm.deliver_batch", campaign_id, token)
    for job_id in imports.stale_jobs():  # an import whose worker died resumes from its last chunk
        submit("crm.run_import", job_id)
    imports.expire_uploads()  # failed imports' files past IMPORT_FAILED_UPLOAD_HOURS
    if rfm.claim_due():  # once per RFM_INTERVAL_H, whichever beat or poller gets there first
        submit("crm.rfm_pass")
    if flows.claim_sweep():  # once per FLOW_SWEEP_INTERVAL_S: segment, win-back, anniversary entries
        submit("crm.flows_sweep")
    if flows.has_due():  # flow steps due (a wait ended; a worker died holding them): run them
        submit("crm.run_flows")
    if tallies.has_due():  # opens and clicks not in their campaigns' tallies yet: fold them in
        submit("crm.fold_tallies")
    return started, len(replan), sum(len(tokens) for tokens in batches.values())


# The campaign jobs, and what give_up() says each was doing.
CAMPAIGN_JOBS = {"crm.run_campaign": "sending", "crm.plan_campaign": "planning", "crm.deliver_batch": "sending"}


def may_retry(exc, attempt):
    """Whether a job that raised ``exc`` on its ``attempt``-th retry (0 first) runs again."""
    if isinstance(exc, ConnectionFailure):
        return True  # nothing can be recorded while the database is away: wait for it
    return transient(exc) and attempt < current_app.config["ENGINE_JOB_RETRIES"]


def backoff(attempt):
    """Seconds before retry number ``attempt`` (0 first): doubling, at most a minute."""
    return min(MAX_BACKOFF_S, current_app.config["ENGINE_JOB_RETRY_BASE_S"] * 2 ** attempt)


def give_up(name, args, exc):
    """End job ``name``'s campaign or import as ``failed``, with the error as its ``lastError``."""
    reason = f"{type(exc).__name__}: {exc}"[:400]
    try:
        if name == "crm.run_import":
            imports.fail(args[0], reason)
        elif name in CAMPAIGN_JOBS:
            control.fail(ObjectId(args[0]), f"{CAMPAIGN_JOBS[name]} failed: {reason}")
    except (InvalidId, TypeError, IndexError):
        log.error("job %s%r cannot be failed: its arguments name nothing", name, tuple(args))
    except Exception:  # the database refused that too: the sweep finds the job later
        log.exception("job %s%r failed and could not be marked failed", name, tuple(args))


BY_NAME = {"crm.run_campaign": run_campaign, "crm.plan_campaign": plan_campaign,
           "crm.deliver_batch": deliver_inline, "crm.run_import": imports.run_import, "crm.rfm_pass": rfm.full_pass,
           "crm.run_flows": flows.run_due, "crm.flows_sweep": flows.sweep_and_run, "crm.fold_tallies": tallies.fold}
