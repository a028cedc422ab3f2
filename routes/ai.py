"""``/api/ai``: the AI assistant (also at ``/api/gemini`` and the seed's ``/gemini``)."""
from flask import Blueprint, jsonify

from apidocs import doc
from controllers import ai as controller
from routes.helpers import load_body
from schemas.ai import AskIn, AskOut

bp = Blueprint("ai", __name__)
ask_in = AskIn()


@bp.post("/ask")
@doc(body=AskIn, response=AskOut, errors=(422, 429, 502, 503, 504),
     description="503 when no GEMINI_API_KEY is configured; 429 (with Retry-After) when the model is "
                 "busy; 422 when its safety filters block the prompt; 502/504 when it fails or times out.")
def ask():
    """Ask the assistant."""
    return jsonify(controller.ask(load_body(ask_in)["prompt"]).legacy_shape())
