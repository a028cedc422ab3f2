"""``/api/campaigns``: campaigns, their deliveries and actions; the legacy audience endpoints."""
from flask import Blueprint, Response
from flask_login import current_user

from controllers import campaigns as controller
from controllers import reports
from routes.endpoint import endpoint
from schemas.campaign import (
    AudienceIn,
    AudienceSizeOut,
    CampaignDetailOut,
    CampaignIn,
    CampaignListItemOut,
    CampaignOut,
    CampaignQuery,
    DeliveryPage,
    DeliveryQuery,
    LegacyCampaignIn,
)
from schemas.report import CampaignReportOut, ReportQuery
from schemas.template import DecideIn, MessagePreviewIn, RenderedOut, TestSendIn, TestSendOut

bp = Blueprint("campaigns", __name__)


@bp.post("/check-audience-size")
@endpoint(body=AudienceIn, response=AudienceSizeOut)
def check_audience_size(body):
    """Count the customers the rules select."""
    return {"audience_size": controller.audience_size(body)}


@bp.post("/create-audience")
@endpoint(body=LegacyCampaignIn, response=CampaignOut, status=201, errors=(503,), idempotent=True,
          description="The legacy client's call: creates a campaign for the rules and starts sending it "
                      "(in the background). 503 when the task queue cannot take it: nothing is created.")
def create_audience(body):
    """Create and send a campaign (legacy)."""
    return controller.create_and_send_legacy(body, current_user)


@bp.get("")
@endpoint(query=CampaignQuery, response=CampaignListItemOut(many=True),
          headers={"X-Total-Count": {"schema": {"type": "integer"}, "description": "All campaigns"}})
def list_campaigns(query):
    """Campaigns as a JSON array, newest first (``X-Total-Count`` carries the total)."""
    campaigns, total = controller.list_campaigns(query["page"], query["per_page"])
    return campaigns, {"X-Total-Count": str(total)}


@bp.post("")
@endpoint(body=CampaignIn, response=CampaignOut, status=201, errors=(404,), idempotent=True,
          description="A draft, or scheduled when scheduledAt is given. Placeholders: {{name}}, "
                      "{{firstName}}, {{email}}, {{totalSpend}}.")
def create_campaign(body):
    """Create a campaign."""
    return controller.create_campaign(body, current_user)


@bp.get("/<id:campaign_id>")
@endpoint(response=CampaignDetailOut)
def get_campaign(campaign_id):
    """A campaign with its delivery statistics."""
    return controller.with_stats(controller.get_campaign(campaign_id))


@bp.get("/<id:campaign_id>/deliveries")
@endpoint(query=DeliveryQuery, response=DeliveryPage)
def list_deliveries(campaign_id, query):
    """A campaign's per-recipient delivery records."""
    return controller.list_deliveries(campaign_id, query)


@bp.get("/<id:campaign_id>/report")
@endpoint(query=ReportQuery, response=CampaignReportOut, errors=(404,), also=("text/csv",),
          description="Every figure computed by aggregation in the database, from the same function as the "
                      "campaign's stats and the campaign list. `format=csv`: the same numbers as rows of "
                      "section,key,metric,value.")
def campaign_report(campaign_id, query):
    """A campaign's report."""
    report = reports.campaign_report(campaign_id)
    if query["format"] == "csv":
        dumped = CampaignReportOut().dump(report)
        return Response(reports.report_csv(report, dumped), content_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'})
    return report


@bp.post("/<id:campaign_id>/decide")
@endpoint(body=DecideIn, response=CampaignDetailOut, errors=(404, 409, 503),
          description="Ends an A/B test's wait: the named variant, else the rule's winner, else the leader goes "
                      "to the rest of the audience (in the background, exactly once each). 409 unless the "
                      "campaign is an A/B test still in its test. An empty body is fine.")
def decide_campaign(campaign_id, body):
    """Decide an A/B test now."""
    return controller.with_stats(controller.decide(campaign_id, body))


@bp.post("/<id:campaign_id>/preview")
@endpoint(body=MessagePreviewIn, response=RenderedOut, errors=(404,),
          description="Subject, preheader and bodies rendered for the customer, as sent but untracked.")
def preview_campaign(campaign_id, body):
    """Render the message for one customer."""
    return controller.preview(campaign_id, body)


@bp.post("/<id:campaign_id>/test-send")
@endpoint(body=TestSendIn, response=TestSendOut, errors=(404,),
          description="Sends the message now, through the configured vendor, to up to 5 addresses: marked as "
                      "a test ([Test] subject, X-CRM-Test header), untracked, with no delivery record; counted "
                      "nowhere. A vendor refusal is reported per address.")
def test_send_campaign(campaign_id, body):
    """Send test messages."""
    return controller.test_send(campaign_id, body)


def _action(action):
    starts_work = action in controller.STARTS_WORK
    when = f"409 unless the campaign is {' or '.join(controller.ACTIONS[action][0])}."
    if starts_work:
        when = ("202 at once: sending runs in the background (a worker, or the server's engine "
                "threads); follow it with GET. 503 when the task queue cannot take it (nothing "
                "changed). " + when)
    else:
        when = "Running batches stop within ENGINE_CONTROL_CHECK_S or one message. " + when

    def view(campaign_id):
        return controller.with_stats(controller.act(campaign_id, action))

    view.__name__ = f"{action.replace('-', '_')}_campaign"
    view.__doc__ = f"{action.capitalize().replace('-', ' ')} the campaign."
    return endpoint(response=CampaignDetailOut, status=202 if starts_work else 200,
                    errors=(409, 503) if starts_work else (409,), description=when)(view)


for _name in controller.ACTIONS:
    bp.add_url_rule(f"/<id:campaign_id>/{_name}", view_func=_action(_name), methods=["POST"])
