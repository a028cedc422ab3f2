"""``/api/ai``: the AI assistant (``ask`` also at ``/api/gemini/ask`` and the seed's ``/gemini/ask``)."""
from flask import Blueprint, jsonify

from apidocs import doc
from controllers import ai as controller
from routes.helpers import load_body, load_query
from schemas.ai import (
    AskIn,
    AskOut,
    MessageVariantsIn,
    MessageVariantsOut,
    SegmentRulesIn,
    SegmentRulesOut,
    SendTimeOut,
    SendTimeQuery,
    SummaryOut,
)

bp = Blueprint("ai", __name__)
gemini_bp = Blueprint("gemini", __name__)  # the seed's name for the same ``ask``
ask_in, send_time_query = AskIn(), SendTimeQuery()
segment_rules_in, message_variants_in = SegmentRulesIn(), MessageVariantsIn()
MODEL_ERRORS = (422, 429, 502, 503, 504)  # what asking the model can end in (see services/gemini.py)


@bp.post("/ask")
@gemini_bp.post("/ask")
@doc(body=AskIn, response=AskOut, errors=MODEL_ERRORS,
     description="503 when no GEMINI_API_KEY is configured; 429 (with Retry-After) when the model is "
                 "busy; 422 when its safety filters block the prompt; 502/504 when it fails or times out.")
def ask():
    """Ask the assistant."""
    return jsonify(controller.ask(load_body(ask_in)["prompt"]).legacy_shape())


@bp.get("/send-time")
@doc(query=SendTimeQuery, response=SendTimeOut,
     description="Computed from order timestamps by the database (UTC); no model needed. With "
                 "rationale=true the model adds one sentence from the aggregate counts only; if it "
                 "fails, rationaleError says why and the computed answer stands.")
def send_time():
    """The best weekday and hour to send."""
    query = load_query(send_time_query)
    return jsonify(controller.send_time(with_rationale=query["rationale"]))


@bp.post("/campaigns/<campaign_id>/summary")
@doc(response=SummaryOut, errors=MODEL_ERRORS,
     description="The server computes every number from the delivery records; the model only words "
                 "them; a summary mentioning any other number is refused (502).")
def campaign_summary(campaign_id):
    """A plain-language summary of a campaign's results."""
    return jsonify(controller.campaign_summary(campaign_id))


@bp.post("/segment-rules")
@doc(body=SegmentRulesIn, response=SegmentRulesOut, errors=MODEL_ERRORS,
     description="The model answers in JSON against the rule schema; the answer is validated like rules a "
                 "user writes, with one correction round, then 502 naming what was wrong. Nothing is "
                 "saved: post the rules to /api/segments or /api/campaigns. The model never sees customers.")
def segment_rules():
    """Audience rules from a plain-language description."""
    return jsonify(controller.segment_rules(load_body(segment_rules_in)["description"]))


@bp.post("/message-variants")
@doc(body=MessageVariantsIn, response=MessageVariantsOut, errors=MODEL_ERRORS,
     description="2–3 campaign messages using only {{name}}, {{firstName}}, {{email}}, {{totalSpend}}. A "
                 "variant with any other placeholder or template code is rejected (listed in `rejected` "
                 "with the reason); 502 when none is usable.")
def message_variants():
    """Campaign message variants for an objective."""
    return jsonify(controller.message_variants(load_body(message_variants_in)))
