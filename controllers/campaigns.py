"""Campaigns: create, read, change state (through the engine), and the legacy audience endpoints.

States and what each action does are the engine's (:mod:`engine.control`); this module validates,
persists new campaigns and turns the engine's refusals into HTTP errors.
"""
import engine
from controllers.common import get_or_404, object_id_or_404, paginate, queue_unavailable, user_id
from errors import ApiError
from models import Campaign, Customer, Delivery, Segment
from models.base import utcnow
from models.campaign import DRAFT, SCHEDULED
from segments import as_group, compile_rules
from services import events

ACTIONS, STARTS_WORK = engine.ACTIONS, engine.STARTS_WORK


def _template(message):
    try:
        engine.check_template(message)
    except engine.TemplateProblem as exc:
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
    try:
        return act(str(campaign.pk), "send")
    except ApiError as exc:
        if exc.status == 503:  # not started: the legacy client would otherwise find a stray draft
            campaign.delete()
        raise


def get_campaign(campaign_id):
    """One campaign or 404."""
    return get_or_404(Campaign, "campaign", campaign_id)


def list_campaigns(page, per_page):
    """Campaigns newest first, with the total count."""
    listing = paginate(Campaign.objects.order_by("-created_at", "-id"), page, per_page)
    return listing["items"], listing["total"]


def act(campaign_id, action):
    """Apply a state action; 404 for an unknown campaign, 409 when it is not in a state the action
    starts from, 503 when the queue cannot take the work (the campaign is left as it was)."""
    pk = object_id_or_404("campaign", campaign_id)
    try:
        return engine.act(pk, action)
    except engine.CampaignNotFound as exc:
        raise ApiError.not_found("campaign", campaign_id) from exc
    except engine.InvalidTransition as exc:
        raise ApiError.conflict(str(exc), {"status": [exc.status]}) from exc
    except engine.QueueUnavailable as exc:
        raise queue_unavailable("nothing was started, try again shortly") from exc


def stats(campaign):
    """Counts by delivery status and the top failure reasons."""
    return engine.stats(campaign)


def with_stats(campaign):
    """The campaign with ``stats`` (:func:`stats`) attached, as ``CampaignDetailOut`` dumps it."""
    campaign.stats = stats(campaign)
    return campaign


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
