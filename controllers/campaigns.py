"""Campaigns: create, read, change state (through the engine), and the legacy audience endpoints.

States and what each action does are the engine's (:mod:`engine.control`); this module validates,
persists new campaigns and turns the engine's refusals into HTTP errors.
"""
from flask import current_app

import engine
from controllers.common import get_or_404, object_id_or_404, paginate, queue_unavailable, user_id
from errors import ApiError
from models import Campaign, Customer, Delivery, Segment, Template
from models.base import utcnow
from models.campaign import DRAFT, SCHEDULED
from schemas.attribute import rule_fields
from segments import as_group, compile_rules
from services import events

ACTIONS, STARTS_WORK = engine.ACTIONS, engine.STARTS_WORK


def _content(data):
    """The campaign's checked content: its own fields, the rest from ``templateId``'s template (bodies
    come as a pair: a campaign giving either body takes neither from the template)."""
    fields = {"subject": data.get("subject"), "preheader": data.get("preheader"), "html": data.get("html"),
              "text": data.get("text") or data.get("message")}
    if data.get("template_id") is not None:
        template = Template.objects(pk=data["template_id"]).first()
        if template is None:
            raise ApiError.not_found("template", str(data["template_id"]))
        own_body = fields["html"] or fields["text"]
        for key in ("subject", "preheader") if own_body else ("subject", "preheader", "html", "text"):
            fields[key] = fields[key] or getattr(template, key)
    try:
        return engine.prepare_content(fields)
    except engine.ContentProblem as exc:
        errors = dict(exc.errors)
        if "message" in data and "text" in errors:  # the field the caller named
            errors["message"] = errors.pop("text")
        raise ApiError.validation(errors, "Invalid content") from exc


def _variants(data, content):
    """Each A/B variant's complete content: the campaign's, with what the variant gives instead (a
    variant giving HTML without text gets text derived from its HTML)."""
    variants, errors = [], {}
    for index, given in enumerate(data.get("variants") or ()):
        fields = {"subject": given.get("subject") or content["subject"], "preheader": content["preheader"],
                  "html": given.get("html") or content["html"], "text": given.get("text")}
        if fields["text"] is None and not given.get("html"):
            fields["text"] = content["text"]
        try:
            prepared = engine.prepare_content(fields)
        except engine.ContentProblem as exc:
            errors.update((f"variants[{index}].{field}", messages) for field, messages in exc.errors.items())
            continue
        variants.append({key: prepared[key] for key in ("subject", "preheader", "html", "text", "links")})
    if errors:
        raise ApiError.validation(errors, "Invalid variant")
    if len({(v["subject"], v["html"], v["text"]) for v in variants}) < len(variants):
        raise ApiError.validation({"variants": ["Two variants are the same."]})
    return variants


def _ab_test(data):
    given = data.get("ab_test")
    if not given:
        return {}
    return {"testPercent": given["test_percent"], "metric": given["metric"],
            "decideAfterMinutes": given["decide_after_minutes"], "fallback": given["fallback"], "phase": None}


def _attribution_days(data):
    days = data.get("attribution_days", 5)
    limit = current_app.config["ATTRIBUTION_MAX_DAYS"]
    if days > limit:
        raise ApiError.validation({"attributionDays": [f"At most {limit:g} (ATTRIBUTION_MAX_DAYS)."]})
    return days


def audience_size(data):
    """Count the customers a rule body selects (legacy check-audience-size, previews)."""
    query = compile_rules(data["rules"], data["logical_operator"], fields=rule_fields())
    return Customer.objects(__raw__=query).count()


def create_campaign(data, actor=None):
    """A draft (or, with ``scheduledAt``, scheduled) campaign for rules or a saved segment."""
    content = _content(data)
    variants = _variants(data, content)
    tracking = data.get("tracking") or {}
    segment_id = data.get("segment_id")
    if segment_id is not None and not Segment.objects(pk=segment_id).count():
        raise ApiError.not_found("segment", str(segment_id))
    scheduled = data.get("scheduled_at")
    campaign = Campaign(
        name=data["name"],
        subject=content["subject"],
        preheader=content["preheader"],
        html=content["html"],
        message=content["text"],
        links=content["links"],
        from_name=data.get("from_name"),
        reply_to=data.get("reply_to"),
        template_id=data.get("template_id"),
        track_opens=tracking.get("opens", True),
        track_clicks=tracking.get("clicks", True),
        attribution_days=_attribution_days(data),
        attribute_on=data.get("attribute_on", "click"),
        variants=variants,
        ab_test=_ab_test(data),
        rules=as_group(data["rules"], data["logical_operator"]) if "rules" in data else {},
        segment_id=segment_id,
        channel=data.get("channel", "email"),
        status=SCHEDULED if scheduled else DRAFT,
        scheduled_at=scheduled,
        messages_per_second=data.get("messages_per_second"),
        send_at_local_time=data.get("send_at_local_time"),
        created_by=user_id(actor),
        tallied=True,
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
    """Campaigns newest first, each with its figures (``stats``), and the total count."""
    listing = paginate(Campaign.objects.order_by("-created_at", "-id"), page, per_page)
    figures = engine.reports.figures(listing["items"])
    for campaign in listing["items"]:
        campaign.stats = figures[campaign.pk]
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


def _customer_data(customer_id):
    """A customer's raw fields for personalisation, or 404."""
    pk = object_id_or_404("customer", str(customer_id))
    doc = Customer._get_collection().find_one({"_id": pk}, dict.fromkeys(engine.CUSTOMER_FIELDS, 1))
    if doc is None:
        raise ApiError.not_found("customer", str(customer_id))
    return doc


def preview(campaign_id, data):
    """The campaign's message rendered for one customer."""
    return engine.preview(get_campaign(campaign_id), _customer_data(data["customer_id"]))


def test_send(campaign_id, data):
    """Send the message to up to five addresses as a test (see :func:`engine.send_tests`)."""
    campaign = get_campaign(campaign_id)
    given = _customer_data(data["customer_id"]) if data.get("customer_id") else None
    projection = dict.fromkeys(engine.CUSTOMER_FIELDS, 1)
    recipients = []
    for address in dict.fromkeys(data["emails"]):  # each address once
        customer = given or Customer._get_collection().find_one({"email": address}, projection) or {"email": address}
        recipients.append((address, customer))
    return {"results": engine.send_tests(campaign, recipients)}


def decide(campaign_id, data):
    """Decide an A/B test now (``variant``: a letter, else the rule and then the leader); 404, 409 when
    it is not an A/B test waiting for its decision, 503 when the queue cannot take the winner's send."""
    pk = object_id_or_404("campaign", campaign_id)
    variant = "ABCDE".index(data["variant"]) if data.get("variant") else None
    try:
        existing = Campaign.objects(pk=pk).only("variants").first()
        if existing is not None and existing.variants and variant is not None and variant >= len(existing.variants):
            # a well-formed letter this campaign has no variant for: a conflict with the campaign, not bad input
            raise ApiError.conflict(f"This campaign has {len(existing.variants)} variants",
                                    {"variant": [f"This campaign has {len(existing.variants)} variants."]})
        return engine.decide(pk, variant)
    except engine.CampaignNotFound as exc:
        raise ApiError.not_found("campaign", campaign_id) from exc
    except engine.NotAnAbTest as exc:
        raise ApiError.conflict("This campaign is not an A/B test", {"variants": ["None."]}) from exc
    except engine.InvalidTransition as exc:
        raise ApiError.conflict(str(exc), {"status": [exc.status]}) from exc
    except engine.QueueUnavailable as exc:
        raise queue_unavailable("nothing was decided, try again shortly") from exc
