"""AI assistant schemas."""
from marshmallow import Schema, fields, validate

from schemas.common import InputSchema


class AskIn(InputSchema):
    """Body of ``POST /ai/ask``."""

    prompt = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class AskOut(Schema):
    """Gemini's response shape (what the legacy client reads), plus ``text``."""

    candidates = fields.List(fields.Dict(), required=True, metadata={
        "description": "candidates[0].content.parts[0].text is the answer"})
    text = fields.String(required=True)
