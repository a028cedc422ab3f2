"""``/api/campaigns``: the legacy audience and campaign endpoints the React client uses."""
from flask import Blueprint, jsonify
from flask_login import current_user

from apidocs import doc

from controllers import campaigns as controller
from routes.helpers import dumped, load_body, load_query
from schemas.campaign import AudienceIn, AudienceSizeOut, CampaignIn, CampaignOut, CampaignQuery

bp = Blueprint("campaigns", __name__)

audience_in, campaign_in, campaign_out = AudienceIn(), CampaignIn(), CampaignOut()
campaign_query = CampaignQuery()


@bp.post("/check-audience-size")
@doc(body=AudienceIn, response=AudienceSizeOut)
def check_audience_size():
    """Count the customers the rules select."""
    return jsonify({"audienceSize": controller.audience_size(load_body(audience_in))})


@bp.post("/create-audience")
@doc(body=CampaignIn, response=CampaignOut, status=201)
def create_audience():
    """Create a campaign for the customers the rules select."""
    campaign = controller.create_campaign(load_body(campaign_in), current_user)
    return dumped(campaign_out, campaign, 201)


@bp.get("")
@doc(query=CampaignQuery, response=CampaignOut(many=True),
     headers={"X-Total-Count": {"schema": {"type": "integer"}, "description": "All campaigns"}})
def list_campaigns():
    """Campaigns as a JSON array, newest first (``X-Total-Count`` carries the total)."""
    query = load_query(campaign_query)
    campaigns, total = controller.list_campaigns(query["page"], query["per_page"])
    response = jsonify(campaign_out.dump(campaigns, many=True))
    response.headers["X-Total-Count"] = str(total)
    return response
