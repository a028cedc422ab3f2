"""``/api/ai``: the AI assistant (``ask`` also at ``/api/gemini/ask`` and the seed's ``/gemini/ask``)."""
from flask import Blueprint
from flask_login import current_user

from controllers import ai as controller
from routes.endpoint import endpoint
from schemas.ai import (
    AskIn,
    AskOut,
    FlowDescriptionIn,
    MessageVariantsIn,
    MessageVariantsOut,
    SegmentRulesIn,
    SegmentRulesOut,
    SendTimeOut,
    SendTimeQuery,
    SummaryOut,
)
from schemas.flow import FlowOut

bp = Blueprint("ai", __name__)
gemini_bp = Blueprint("gemini", __name__)  # the seed's name for the same ``ask``
MODEL_ERRORS = (422, 429, 502, 503, 504)  # what asking the model can end in (see services/gemini.py)


@bp.post("/ask")
@gemini_bp.post("/ask")
@endpoint(body=AskIn, response=AskOut, errors=MODEL_ERRORS,
          description="503 when no GEMINI_API_KEY is configured; 429 (with Retry-After) when the model is "
                      "busy; 422 when its safety filters block the prompt; 502/504 when it fails or times out.")
def ask(body):
    """Ask the assistant."""
    return controller.ask(body["prompt"])


@bp.get("/send-time")
@endpoint(query=SendTimeQuery, response=SendTimeOut,
          description="Computed from order timestamps by the database (UTC); no model needed. With "
                      "rationale=true the model adds one sentence from the aggregate counts only; if it "
                      "fails, rationaleError says why and the computed answer stands.")
def send_time(query):
    """The best weekday and hour to send."""
    return controller.send_time(with_rationale=query["rationale"])


@bp.post("/campaigns/<campaign_id>/summary")
@endpoint(response=SummaryOut, errors=MODEL_ERRORS,
          description="The server computes every number from the delivery records; the model only words "
                      "them; a summary mentioning any other number is refused (502).")
def campaign_summary(campaign_id):
    """A plain-language summary of a campaign's results."""
    return controller.campaign_summary(campaign_id)


@bp.post("/segment-rules")
@endpoint(body=SegmentRulesIn, response=SegmentRulesOut, errors=MODEL_ERRORS,
          description="The model answers in JSON against the rule schema; the answer is validated like rules "
                      "a user writes, with one correction round, then 502 naming what was wrong. Nothing is "
                      "saved: post the rules to /api/segments or /api/campaigns. The model never sees "
                      "customers.")
def segment_rules(body):
    """Audience rules from a plain-language description."""
    return controller.segment_rules(body["description"])


@bp.post("/flows")
@endpoint(body=FlowDescriptionIn, response=FlowOut, status=201, errors=MODEL_ERRORS, description=(
    "The model answers in JSON against the flow schema; the answer is validated like a flow a user posts "
    "(and its segment and content checked as when saved), with one correction round, then 502 naming what "
    "was wrong. Saved as a draft with `generated` (the description and the model's explanation): the "
    "assistant never activates a flow; review it, then POST /api/flows/<id>/activate."))
def draft_flow(body):
    """A draft lifecycle flow from a plain-language description."""
    return controller.draft_flow(body["description"], current_user)


@bp.post("/message-variants")
@endpoint(body=MessageVariantsIn, response=MessageVariantsOut, errors=MODEL_ERRORS,
          description="2–3 campaign messages using only {{name}}, {{firstName}}, {{email}}, {{totalSpend}}. A "
                      "variant with any other placeholder or template code is rejected (listed in `rejected` "
                      "with the reason); 502 when none is usable.")
def message_variants(body):
    """Campaign message variants for an objective."""
    return controller.message_variants(body)
