"""Campaigns: create, read, change state, and the legacy audience endpoints.

States: draft → scheduled → sending → completed | paused | cancelled | failed. Every change is one
conditional update (``status`` must still be what the action starts from), so two concurrent
actions cannot both win, and every change publishes a domain event.
"""
from controllers import dispatch
from controllers.common import get_or_404, object_id_or_404, paginate, user_id
from controllers.messages import TemplateProblem, check_template
from errors import ApiError
from models import Campaign, Customer, Delivery, Segment
from models.base import utcnow
from models.campaign import CANCELLED, COMPLETED, DRAFT, FAILED, PAUSED, SCHEDULED, SENDING
from models.delivery import FAILED as DELIVERY_FAILED
from segments import as_group, compile_rules
from services import events

ACTIONS = {
    "send": ((DRAFT, SCHEDULED), SENDING),
    "pause": ((SENDING,), PAUSED),
    "resume": ((PAUSED,), SENDING),
    "cancel": ((DRAFT, SCHEDULED, SENDING, PAUSED), CANCELLED),
    "retry-failed": ((COMPLETED, FAILED, PAUSED), SENDING),
}
EVENTS = {"send": "campaign.sending", "pause": "campaign.paused", "resume": "campaign.resumed",
          "cancel": "campaign.cancelled", "retry-failed": "campaign.retrying"}


def _template(message):
    try:
        check_template(message)
    except TemplateProblem as exc:
        raise ApiError.validation({"message": [str(exc)]}, "Invalid message") from exc


def audience_size(data):
    """Count the customers a rule body selects (legacy check-audience-size, previews)."""
    return Customer.objects(__raw__=compile_rules(data["rules"], data["logical_operator"])).count()


def create_campaign(data, actor=None):
    """A draft (or, with ``scheduledAt``, scheduled) campaign for rules or a saved segment."""
    _template(data["message"])
    segment_id = data.get("segment_id")
    if segment_id is not None and not Segment.objects(pk=segment_id).count():
        raise ApiError.not_found("segment", str(segment_id))
    scheduled = data.get("scheduled_at")
    campaign = Campaign(
        name=data["name"],
        message=data["message"],
        rules=as_group(data["rules"], data["logical_operator"]) if "rules" in data else {},
        segment_id=segment_id,
        channel=data.get("channel", "email"),
        status=SCHEDULED if scheduled else DRAFT,
        scheduled_at=scheduled,
        messages_per_second=data.get("messages_per_second"),
        created_by=user_id(actor),
    ).save(force_insert=True)
    events.publish("campaign.created", campaignId=str(campaign.pk), status=campaign.status)
    return campaign


def create_and_send_legacy(data, actor=None):
    """The legacy ``create-audience``: a campaign for the rules, sent at once."""
    campaign = create_campaign({
        "name": f"Campaign {utcnow():%Y-%m-%d %H:%M}",
        "message": data["message"],
        "rules": data["rules"],
        "logical_operator": data["logical_operator"],
    }, actor)
    return act(str(campaign.pk), "send")


def get_campaign(campaign_id):
    """One campaign or 404."""
    return get_or_404(Campaign, "campaign", campaign_id)


def list_campaigns(page, per_page):
    """Campaigns newest first, with the total count."""
    listing = paginate(Campaign.objects.order_by("-created_at", "-id"), page, per_page)
    return listing["items"], listing["total"]


def act(campaign_id, action):
    """Apply a state action; 409 when the campaign is not in a state the action starts from."""
    pk = object_id_or_404("campaign", campaign_id)
    sources, target = ACTIONS[action]
    now = utcnow()
    changes = {"set__status": target, "set__updated_at": now}
    if action == "send":
        changes.update(set__started_at=now, set__audience_size=None, set__planned=None, set__plan_cursor=None)
    campaign = Campaign.objects(pk=pk, status__in=sources).modify(new=True, **changes)
    if campaign is None:
        current = get_or_404(Campaign, "campaign", campaign_id)
        raise ApiError.conflict(
            f"Cannot {action} a campaign that is {current.status}", {"status": [current.status]}
        )
    events.publish(EVENTS[action], campaignId=campaign_id, status=target)
    _enqueue(action, campaign_id)
    return Campaign.objects(pk=pk).first()


def _enqueue(action, campaign_id):
    import tasks

    if action == "retry-failed":
        dispatch.requeue_failed(campaign_id)
    if action in ("send", "resume", "retry-failed"):
        tasks.plan_campaign.delay(campaign_id)  # continues after the plan cursor; no-op when planned
    if action in ("resume", "retry-failed"):
        tasks.redispatch.delay(campaign_id)


def start_due_campaigns(now=None):
    """Start every scheduled campaign whose ``scheduledAt`` has passed; returns how many."""
    now = now or utcnow()
    started = 0
    for campaign in Campaign.objects(status=SCHEDULED, scheduled_at__lte=now).only("id"):
        try:
            act(str(campaign.pk), "send")
            started += 1
        except ApiError:  # started or cancelled meanwhile
            continue
    return started


def stats(campaign):
    """Counts by delivery status and the top failure reasons, by aggregation over the records."""
    collection = Delivery._get_collection()
    by_status = {row["_id"]: row["n"] for row in collection.aggregate([
        {"$match": {"campaign": campaign.pk}},
        {"$group": {"_id": "$status", "n": {"$sum": 1}}},
    ])}
    reasons = [{"reason": row["_id"], "count": row["n"]} for row in collection.aggregate([
        {"$match": {"campaign": campaign.pk, "status": DELIVERY_FAILED}},
        {"$group": {"_id": "$error", "n": {"$sum": 1}}},
        {"$sort": {"n": -1, "_id": 1}},
        {"$limit": 10},
    ])]
    counts = {key.lower(): by_status.get(key, 0) for key in ("PENDING", "SENT", "DELIVERED", "FAILED")}
    return {"audience_size": campaign.audience_size, **counts, "total": sum(by_status.values()),
            "failure_reasons": reasons}


def list_deliveries(campaign_id, query):
    """A campaign's delivery records, optionally by status."""
    pk = object_id_or_404("campaign", campaign_id)
    if not Campaign.objects(pk=pk).count():
        raise ApiError.not_found("campaign", campaign_id)
    filters = {"campaign_id": pk}
    if "status" in query:
        filters["status"] = query["status"]
    # by customer: served by the (campaign, customer) and (campaign, status, customer) indexes
    return paginate(Delivery.objects(**filters).order_by("customer_id"), query["page"], query["per_page"])
