"""``/api/campaigns``: campaigns, their deliveries and actions; the legacy audience endpoints."""
from flask import Blueprint, jsonify
from flask_login import current_user

from apidocs import doc
from controllers import campaigns as controller
from controllers.idempotency import idempotent
from routes.helpers import dumped, dumped_page, load_body, load_query
from schemas.campaign import (
    AudienceIn,
    AudienceSizeOut,
    CampaignDetailOut,
    CampaignIn,
    CampaignListItemOut,
    CampaignOut,
    CampaignQuery,
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    LegacyCampaignIn,
    StatsOut,
)

bp = Blueprint("campaigns", __name__)

audience_in, legacy_in, campaign_in = AudienceIn(), LegacyCampaignIn(), CampaignIn()
campaign_out, stats_out, campaign_query = CampaignOut(), StatsOut(), CampaignQuery()
campaign_list_out = CampaignListItemOut(many=True)
delivery_query, delivery_out = DeliveryQuery(), DeliveryOut()


def _detail(campaign, status=200):
    """The campaign with its delivery statistics (``CampaignDetailOut``)."""
    response = jsonify({**campaign_out.dump(campaign), "stats": stats_out.dump(controller.stats(campaign))})
    response.status_code = status
    return response


@bp.post("/check-audience-size")
@doc(body=AudienceIn, response=AudienceSizeOut)
def check_audience_size():
    """Count the customers the rules select."""
    return jsonify({"audienceSize": controller.audience_size(load_body(audience_in))})


@bp.post("/create-audience")
@doc(body=LegacyCampaignIn, response=CampaignOut, status=201, errors=(503,), idempotent=True,
     description="The legacy client's call: creates a campaign for the rules and starts sending it "
                 "(in the background). 503 when the task queue cannot take it: nothing is created.")
@idempotent
def create_audience():
    """Create and send a campaign (legacy)."""
    return dumped(campaign_out, controller.create_and_send_legacy(load_body(legacy_in), current_user), 201)


@bp.get("")
@doc(query=CampaignQuery, response=CampaignListItemOut(many=True),
     headers={"X-Total-Count": {"schema": {"type": "integer"}, "description": "All campaigns"}})
def list_campaigns():
    """Campaigns as a JSON array, newest first (``X-Total-Count`` carries the total)."""
    query = load_query(campaign_query)
    campaigns, total = controller.list_campaigns(query["page"], query["per_page"])
    response = jsonify(campaign_list_out.dump(campaigns))
    response.headers["X-Total-Count"] = str(total)
    return response


@bp.post("")
@doc(body=CampaignIn, response=CampaignOut, status=201, errors=(404,), idempotent=True,
     description="A draft, or scheduled when scheduledAt is given. Placeholders: {{name}}, "
                 "{{firstName}}, {{email}}, {{totalSpend}}.")
@idempotent
def create_campaign():
    """Create a campaign."""
    return dumped(campaign_out, controller.create_campaign(load_body(campaign_in), current_user), 201)


@bp.get("/<campaign_id>")
@doc(response=CampaignDetailOut)
def get_campaign(campaign_id):
    """A campaign with its delivery statistics."""
    return _detail(controller.get_campaign(campaign_id))


@bp.get("/<campaign_id>/deliveries")
@doc(query=DeliveryQuery, response=DeliveryPage)
def list_deliveries(campaign_id):
    """A campaign's per-recipient delivery records."""
    return dumped_page(delivery_out, controller.list_deliveries(campaign_id, load_query(delivery_query)))


def _action(action):
    starts_work = action in controller.STARTS_WORK
    status = 202 if starts_work else 200

    def view(campaign_id):
        return _detail(controller.act(campaign_id, action), status)

    view.__name__ = f"{action.replace('-', '_')}_campaign"
    view.__doc__ = f"{action.capitalize().replace('-', ' ')} the campaign."
    when = f"409 unless the campaign is {' or '.join(controller.ACTIONS[action][0])}."
    if starts_work:
        when = ("202 at once: sending runs in the background (a worker, or the server's engine "
                "threads); follow it with GET. 503 when the task queue cannot take it (nothing "
                "changed). " + when)
    else:
        when = "Running batches stop within ENGINE_CONTROL_CHECK_S or one message. " + when
    return doc(response=CampaignDetailOut, status=status, errors=(409, 503) if starts_work else (409,),
               description=when)(view)


for _name in controller.ACTIONS:
    bp.add_url_rule(f"/<campaign_id>/{_name}", view_func=_action(_name), methods=["POST"])
