"""A local stand-in for Gemini's ``generateContent`` REST endpoint: records requests, replays scripts."""
import json
import threading
import time

from flask import Flask, jsonify, request
from werkzeug.serving import make_server


def answer(text, finish="STOP"):
    """A normal generateContent response."""
    return 200, {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                 "finishReason": finish, "index": 0}],
                 "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 5, "totalTokenCount": 10}}


def failure(status, message="error"):
    """An error response as Google's APIs send it."""
    names = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}
    return status, {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}


def plausible(body):
    """The unscripted answer: in the shape the request asks for (JSON mode included), valid for our use."""
    schema = ((body or {}).get("generationConfig") or {}).get("responseSchema") or {}
    properties = schema.get("properties") or {}
    if "variants" in properties:
        count = int(properties["variants"].get("maxItems", 3))
        variants = [{"message": "Hi {{firstName}}, a little thank-you inside.", "angle": "warm"},
                    {"message": "{{name}}: 10% off this week.", "angle": "discount"},
                    {"message": "We saved something for you, {{firstName}}.", "angle": "curiosity"}]
        return answer(json.dumps({"variants": variants[:count]}))
    if "steps" in properties:
        return answer(json.dumps({
            "name": "Welcome", "explanation": "Welcomes new customers.", "reentryDays": None,
            "trigger": {"type": "customer.created", "rules": [], "segmentId": "", "days": 0},
            "steps": [{"type": "send", "subject": "Welcome, {{ firstName | default(\"there\") }}",
                       "text": "Thanks for joining.", "days": 0, "then": "", "rules": []}]}))
    if "rules" in properties:
        return answer(json.dumps({"logicalOperator": "AND", "explanation": "Customers who spent over 100.",
                                  "rules": [{"field": "totalSpend", "operator": ">", "value": "100"}]}))
    return answer("Hello from the stand-in")


class GeminiStandIn:
    """Serve on 127.0.0.1; ``script`` is a list of ``(status, body[, delay_s])`` answered in order, then
    :func:`plausible` answers."""

    def __init__(self):
        self.requests = []
        self.script = []
        self._server = None

    def start(self):
        app = Flask("gemini-stand-in")

        @app.post("/v1beta/models/<path:target>")
        def generate(target):
            model, _, method = target.partition(":")
            body = request.get_json(silent=True)
            self.requests.append({"model": model, "method": method, "key": request.headers.get("x-goog-api-key"),
                                  "body": body})
            status, body, *delay = self.script.pop(0) if self.script else plausible(body)
            if delay:
                time.sleep(delay[0])
            return jsonify(body), status

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def stop(self):
        self._server.shutdown()
