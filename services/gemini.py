"""The AI assistant's model: Google Gemini through the ``google-generativeai`` SDK.

Routes and controllers only call :func:`generate`; nothing else imports the SDK, so moving to its
successor (``google-genai``; this package is in maintenance) changes this module alone.

Each app has its own client in ``app.extensions["gemini"]`` (its key, endpoint and connection pool):
the SDK's ``genai.configure`` would set one for the whole process, so two apps in one process (tests,
a second tenant) would talk to whichever configured it last.

Errors become JSON: not configured → 503; upstream 429 → 429 with Retry-After; upstream 5xx or
unreadable output → 502; timeout → 504; a prompt blocked by safety filters → 422 with the reason.
Up to two retries on 429/5xx, with backoff.
"""
import logging
import threading
import time
import warnings
from dataclasses import dataclass

from flask import current_app

from errors import ApiError

log = logging.getLogger(__name__)
_client_lock = threading.Lock()


@dataclass(frozen=True)
class Generation:
    """The model's answer: its text and why it stopped (``STOP``, ``MAX_TOKENS``, ...)."""

    text: str
    finish_reason: str


def _sdk():
    with warnings.catch_warnings():  # the package announces its end of support on import
        warnings.simplefilter("ignore")
        import google.generativeai as genai
    return genai


def init_app(app):
    """Reserve the app's client slot; the client is made on first use (most requests never ask)."""
    app.extensions["gemini"] = None


def _client(app):
    """The app's ``GenerativeServiceClient`` (REST), made once from its config."""
    client = app.extensions.get("gemini")
    if client is None:
        from google.ai import generativelanguage as glm

        config = app.config
        options = {"api_key": config["GEMINI_API_KEY"]}
        if config.get("GEMINI_API_ENDPOINT"):
            options["api_endpoint"] = config["GEMINI_API_ENDPOINT"]
        with _client_lock:
            client = app.extensions.get("gemini")
            if client is None:
                client = app.extensions["gemini"] = glm.GenerativeServiceClient(
                    transport="rest", client_options=options)
    return client


def generate(prompt, *, system, json_schema=None, timeout=None):
    """Ask the model; returns a :class:`Generation` or raises an ``ApiError`` (never a 500)."""
    config = current_app.config
    if not config.get("GEMINI_API_KEY"):
        raise ApiError.unavailable("AI assistant is not configured")
    genai = _sdk()
    from google.api_core import exceptions as google_errors

    generation_config = {}
    if json_schema is not None:
        generation_config = {"response_mime_type": "application/json", "response_schema": json_schema}
    model = genai.GenerativeModel(config["GEMINI_MODEL"], system_instruction=system,
                                  generation_config=generation_config or None)
    # The SDK has no public way to hand a model its client: without this it takes the process-wide
    # default that ``genai.configure`` sets (see the module docstring).
    model._client = _client(current_app._get_current_object())
    timeout = timeout or config["GEMINI_TIMEOUT_S"]
    attempts = 1 + config["GEMINI_RETRIES"]
    for attempt in range(attempts):
        try:
            # retry=None: the SDK would otherwise retry 503s by itself for up to ten minutes
            response = model.generate_content(prompt, request_options={"timeout": timeout, "retry": None})
            return _read(response)
        except google_errors.TooManyRequests as exc:
            if attempt + 1 == attempts:
                error = ApiError(429, "The AI service is busy; try again shortly")
                error.headers = {"Retry-After": str(config["GEMINI_RETRY_AFTER_S"])}
                raise error from exc
        except (google_errors.InternalServerError, google_errors.ServiceUnavailable,
                google_errors.GatewayTimeout, google_errors.BadGateway) as exc:
            if attempt + 1 == attempts:
                raise ApiError(502, "The AI service failed; try again later") from exc
        except google_errors.GoogleAPICallError as exc:
            log.warning("Gemini refused the request: %s", exc)
            raise ApiError(502, "The AI service refused the request") from exc
        except Exception as exc:  # the REST transport raises requests' own timeout errors
            if _is_timeout(exc):
                raise ApiError(504, "The AI service did not answer in time") from exc
            raise
        time.sleep(config["GEMINI_RETRY_BACKOFF_S"] * 2 ** attempt)
    raise AssertionError("unreachable")


def _is_timeout(exc):
    import requests

    return isinstance(exc, (requests.Timeout, TimeoutError)) or "timed out" in str(exc).lower()


def _read(response):
    feedback = getattr(response, "prompt_feedback", None)
    block_reason = getattr(feedback, "block_reason", 0) if feedback is not None else 0
    if block_reason:
        name = getattr(block_reason, "name", str(block_reason))
        raise ApiError(422, f"The prompt was blocked by the AI service's safety filters ({name})",
                       {"prompt": [f"Blocked: {name}"]})
    try:
        candidate = response.candidates[0]
        text = "".join(part.text for part in candidate.content.parts)
    except (IndexError, AttributeError, ValueError) as exc:
        raise ApiError(502, "The AI service returned no readable answer") from exc
    if not text:
        reason = getattr(getattr(candidate, "finish_reason", None), "name", "")
        if reason == "SAFETY":
            raise ApiError(422, "The answer was blocked by the AI service's safety filters (SAFETY)")
        raise ApiError(502, "The AI service returned no readable answer")
    finish = getattr(getattr(candidate, "finish_reason", None), "name", "STOP") or "STOP"
    return Generation(text=text, finish_reason=finish)
