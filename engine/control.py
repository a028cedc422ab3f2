"""Campaign states and the actions that move them.

draft → scheduled → sending → completed | paused | cancelled | failed. Every change is one conditional
update (``status`` must still be what the action starts from), so two concurrent actions cannot both
win, and every change publishes a domain event. Actions that start work (send, resume, retry-failed)
only change the state and queue one job: the request never waits for sending. Should the queue refuse
the job (broker unreachable), the change is undone and :class:`QueueUnavailable` raised, so nothing
reads ``sending`` that no worker will ever pick up.
"""
import uuid
from datetime import timedelta

from flask import current_app

from models import Campaign
from models.base import utcnow
from models.campaign import (
    AB_TEST,
    AB_WAITING,
    AB_WINNER,
    CANCELLED,
    COMPLETED,
    DRAFT,
    FAILED,
    PAUSED,
    SCHEDULED,
    SENDING,
)
from models.delivery import DELIVERED, SENT
from models.delivery import FAILED as DELIVERY_FAILED
from models.delivery import PENDING
from engine import abtest, reports, runner, store
from engine.runner import QueueUnavailable
from services import events

ACTIONS = {
    "send": ((DRAFT, SCHEDULED), SENDING),
    "pause": ((SENDING,), PAUSED),
    "resume": ((PAUSED,), SENDING),
    "cancel": ((DRAFT, SCHEDULED, SENDING, PAUSED), CANCELLED),
    "retry-failed": ((COMPLETED, FAILED, PAUSED), SENDING),
}
STARTS_WORK = ("send", "resume", "retry-failed")
EVENTS = {"send": "campaign.sending", "pause": "campaign.paused", "resume": "campaign.resumed",
          "cancel": "campaign.cancelled", "retry-failed": "campaign.retrying"}

__all__ = ["ACTIONS", "STARTS_WORK", "InvalidTransition", "QueueUnavailable", "act"]


class InvalidTransition(Exception):
    """The campaign is not in a state the action starts from (``status`` says which it is in)."""

    def __init__(self, action, status):
        super().__init__(f"Cannot {action} a campaign that is {status}")
        self.status = status


class CampaignNotFound(LookupError):
    """No campaign with this id."""


def act(campaign_pk, action):
    """Apply ``action``; returns the campaign as it is now."""
    sources, target = ACTIONS[action]
    now = utcnow()
    changes = {"set__status": target, "set__updated_at": now, "unset__last_error": True}
    if action == "send":  # the job counts the audience first thing: a big count never holds a request
        changes.update(set__started_at=now, set__audience_size=None, set__planned=None,
                       set__plan_cursor=None, set__completed_at=None)
    if action in ("resume", "retry-failed"):  # pacing starts afresh: no reservation left from before
        changes.update(set__rate_next_at=None, set__completed_at=None)
    before = Campaign.objects(pk=campaign_pk, status__in=sources).modify(new=False, **changes)
    if before is None:
        current = Campaign.objects(pk=campaign_pk).only("status").first()
        if current is None:
            raise CampaignNotFound(str(campaign_pk))
        raise InvalidTransition(action, current.status)
    events.publish(EVENTS[action], campaignId=str(campaign_pk), status=target)  # before any worker's
    if action in STARTS_WORK:
        try:
            runner.submit("crm.run_campaign", str(campaign_pk),
                          uuid.uuid4().hex if action == "retry-failed" else None)
        except QueueUnavailable:
            _undo(campaign_pk, before, now)
            raise
    return Campaign.objects(pk=campaign_pk).first()


def _undo(campaign_pk, before, at):
    """Put back the fields an action changed (only if nothing changed the campaign since)."""
    Campaign.objects(pk=campaign_pk, updated_at=at).update_one(
        set__status=before.status, set__updated_at=utcnow(), set__started_at=before.started_at,
        set__audience_size=before.audience_size, set__planned=before.planned,
        set__plan_cursor=before.plan_cursor, set__completed_at=before.completed_at,
        set__last_error=before.last_error,
    )


def start_due(now=None):
    """Start every scheduled campaign whose ``scheduledAt`` has passed; returns how many."""
    now = now or utcnow()
    started = 0
    for campaign in Campaign.objects(status=SCHEDULED, scheduled_at__lte=now).only("id"):
        try:
            act(campaign.pk, "send")
            started += 1
        except InvalidTransition:  # started or cancelled meanwhile
            continue
    return started


def finish_if_done(campaign_pk):
    """End a fully planned sending campaign with nothing PENDING: ``completed`` when anything was
    handed to the vendor, ``failed`` (with the reason) when every recipient was refused."""
    campaign = Campaign.objects(pk=campaign_pk).only("status", "planned").first()
    if campaign is None or campaign.status != SENDING or campaign.planned is None:
        return
    if store.has_pending(campaign_pk):
        return
    reason = None if store.handed_off(campaign_pk) else _nothing_sent_reason(campaign_pk)
    final = FAILED if reason else COMPLETED
    now = utcnow()
    changes = {"set__status": final, "set__completed_at": now, "set__updated_at": now}
    if reason:
        changes["set__last_error"] = reason
    if Campaign.objects(pk=campaign_pk, status=SENDING).update_one(**changes):
        events.publish(f"campaign.{final}", campaignId=str(campaign_pk), **({"reason": reason} if reason else {}))


def reconsider(campaign_pks):
    """After receipts: a completed campaign whose every recipient has now failed is ``failed``."""
    for campaign_pk in campaign_pks:
        reason = _nothing_sent_reason(campaign_pk)
        if reason and Campaign.objects(pk=campaign_pk, status=COMPLETED).update_one(
            set__status=FAILED, set__last_error=reason, set__updated_at=utcnow()
        ):
            events.publish("campaign.failed", campaignId=str(campaign_pk), reason=reason)


def _nothing_sent_reason(campaign_pk):
    """Why the campaign failed when every record FAILED (None when one did not, or there are none):
    one indexed look-up for a record in another state, which answers at once for a campaign that
    reached anyone; only then the FAILED ones are counted."""
    if store.has_status(campaign_pk, (PENDING, SENT, DELIVERED)):
        return None
    failed = store.count_status(campaign_pk, DELIVERY_FAILED)
    if not failed:
        return None
    top = store.failure_reasons(campaign_pk, limit=1)
    return f"Every recipient failed ({failed}); most common reason: {top[0]['reason']}"


def fail(campaign_pk, reason):
    """Stop a sending campaign that cannot go on; PENDING records stay for ``retry-failed``."""
    if Campaign.objects(pk=campaign_pk, status=SENDING).update_one(
        set__status=FAILED, set__last_error=reason[:500], set__updated_at=utcnow()
    ):
        events.publish("campaign.failed", campaignId=str(campaign_pk), reason=reason)


# --- A/B tests (engine.abtest) --------------------------------------------------------------------------
class NotAnAbTest(Exception):
    """The campaign has no variants to decide between."""


def start_ab_test(campaign_pk):
    """The test starts (its first planning): the phase becomes ``test`` and the decision is due
    ``decideAfterMinutes`` from now. Conditional: only the first planner starts it."""
    campaign = Campaign.objects(pk=campaign_pk).only("ab_test").first()
    minutes = campaign.ab_test["decideAfterMinutes"]
    Campaign._get_collection().update_one(
        {"_id": campaign_pk, "abTest.phase": None},
        {"$set": {"abTest.phase": AB_TEST, "abTest.decideAt": utcnow() + timedelta(minutes=minutes)}})


def decide(campaign_pk, variant=None, deadline=False):
    """Choose the winner and send it to the rest of the audience (the rule of :mod:`engine.abtest`):
    ``variant`` (an index) when the marketer names it; else the rule's winner when it is met; else,
    asked by a person, the leader; at the deadline, the fallback (``manual``: nothing yet, the
    campaign waits for a person). One conditional update moves the phase to ``winner`` and resets
    the planning cursor; a planner still writing the test stops at its next batch. Returns the
    campaign, or None when the fallback is to wait."""
    campaign = Campaign.objects(pk=campaign_pk).first()
    if campaign is None:
        raise CampaignNotFound(str(campaign_pk))
    ab = campaign.ab_test or {}
    if not ab:
        raise NotAnAbTest(str(campaign_pk))
    if campaign.status != SENDING or ab.get("phase") not in (AB_TEST, AB_WAITING):
        raise InvalidTransition("decide", campaign.status if campaign.status != SENDING else f"in its {ab.get('phase')} phase")
    config = current_app.config
    result = abtest.evaluate(abtest.arms(reports.by_variant(campaign), ab["metric"]), ab["metric"], config["AB_MIN_SAMPLE"], config["AB_CONFIDENCE"],
                             seed=str(campaign_pk))
    if variant is not None:
        winner, by = variant, "manual"
    elif result["met"]:
        winner, by = result["winner"], "rule"
    elif not deadline:
        winner, by = result["leader"], "manual"
    elif ab["fallback"] == "manual":
        Campaign._get_collection().update_one({"_id": campaign_pk, "abTest.phase": ab["phase"]},
                                              {"$set": {"abTest.awaitingDecision": True}})
        return None
    else:
        winner, by = (result["leader"] if ab["fallback"] == "leader" else 0), "fallback"
    now = utcnow()
    decided = {"abTest.phase": AB_WINNER, "abTest.winner": winner, "abTest.decidedBy": by, "abTest.decidedAt": now,
               "abTest.probabilities": result["probabilities"], "abTest.ruleMet": result["met"],
               "planCursor": None, "updatedAt": now}
    changed = Campaign._get_collection().update_one(
        {"_id": campaign_pk, "status": SENDING, "abTest.phase": {"$in": [AB_TEST, AB_WAITING]}}, {"$set": decided})
    if not changed.matched_count:
        current = Campaign.objects(pk=campaign_pk).only("status").first()
        raise InvalidTransition("decide", current.status if current else "gone")
    events.publish("campaign.decided", campaignId=str(campaign_pk), winner=abtest.LETTERS[winner], decidedBy=by)
    try:
        runner.submit("crm.run_campaign", str(campaign_pk), None)
    except QueueUnavailable:  # not decided after all: put the test back as it was
        Campaign._get_collection().update_one(
            {"_id": campaign_pk, "abTest.decidedAt": now},
            {"$set": {"abTest.phase": ab["phase"], "planCursor": campaign.plan_cursor},
             "$unset": {"abTest.winner": "", "abTest.decidedBy": "", "abTest.decidedAt": "",
                        "abTest.probabilities": "", "abTest.ruleMet": ""}})
        raise
    return Campaign.objects(pk=campaign_pk).first()


def decide_due(now=None):
    """Decide every A/B test whose decision time has passed (the scheduler's round); how many."""
    now = now or utcnow()
    due = Campaign._get_collection().find(
        {"status": SENDING, "abTest.phase": AB_WAITING, "abTest.decideAt": {"$lte": now},
         "abTest.awaitingDecision": {"$ne": True}}, {"_id": 1})
    decided = 0
    for doc in due:
        try:
            decided += decide(doc["_id"], deadline=True) is not None
        except InvalidTransition:  # decided, paused or cancelled meanwhile
            continue
    return decided
