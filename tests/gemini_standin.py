"""A local stand-in for Gemini's ``generateContent`` REST endpoint: records requests, replays scripts."""
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


class GeminiStandIn:
    """Serve on 127.0.0.1; ``script`` is a list of ``(status, body[, delay_s])`` answered in order."""

    def __init__(self):
        self.requests = []
        self.script = []
        self._server = None

    def start(self):
        app = Flask("gemini-stand-in")

        @app.post("/v1beta/models/<path:target>")
        def generate(target):
            model, _, method = target.partition(":")
            self.requests.append({"model": model, "method": method, "key": request.headers.get("x-goog-api-key"),
                                  "body": request.get_json(silent=True)})
            status, body, *delay = self.script.pop(0) if self.script else answer("Hello from the stand-in")
            if delay:
                time.sleep(delay[0])
            return jsonify(body), status

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def stop(self):
        self._server.shutdown()
