"""The AI assistant's model: Google Gemini through the ``google-genai`` SDK.

``google-genai`` is the official successor of ``google-generativeai`` (the design card's package),
which reached its end of life on 2025-11-30 ("All support ... ended permanently") and held protobuf
back at 5.x; this SDK has no protobuf or gRPC at all (REST over httpx). Routes and controllers only
call :func:`generate`; nothing else imports the SDK.

Each app has its own ``genai.Client`` in ``app.extensions["gemini"]`` (its key, endpoint, timeout and
connection pool), made on first use; ``GEMINI_API_ENDPOINT`` is its ``base_url`` (the tests' local
stand-in, or a proxy).

Errors become JSON: not configured → 503; upstream 429 → 429 with Retry-After; upstream 5xx or
unreadable output → 502; timeout → 504; a prompt blocked by safety filters → 422 with the reason.
Up to ``GEMINI_RETRIES`` retries on 429/5xx, with backoff (the SDK's own retries are off: one policy).
"""
import logging
import threading
import time
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


def init_app(app):
    """Reserve the app's client slot; the client is made on first use (most requests never ask)."""
    app.extensions["gemini"] = None


def _client(app):
    """The app's ``genai.Client``, made once from its config."""
    client = app.extensions.get("gemini")
    if client is None:
        from google import genai
        from google.genai import types

        config = app.config
        options = _http_options(types, config["GEMINI_TIMEOUT_S"], config.get("GEMINI_API_ENDPOINT") or None)
        with _client_lock:
            client = app.extensions.get("gemini")
            if client is None:
                client = app.extensions["gemini"] = genai.Client(api_key=config["GEMINI_API_KEY"],
                                                                 http_options=options)
    return client


def _http_options(types, timeout_s, base_url=None):
    """The SDK's HTTP options: Gemini's v1beta, this timeout, no retries of its own (ours are below).
    Per request, only what is given replaces the client's (its ``base_url`` stays)."""
    return types.HttpOptions(api_version="v1beta", timeout=int(timeout_s * 1000), base_url=base_url,
                             retry_options=types.HttpRetryOptions(attempts=1))


def generate(prompt, *, system, json_schema=None, timeout=None):
    """Ask the model; returns a :class:`Generation` or raises an ``ApiError`` (never a 500)."""
    config = current_app.config
    if not config.get("GEMINI_API_KEY"):
        raise ApiError.unavailable("AI assistant is not configured")
    from google.genai import errors as google_errors
    from google.genai import types

    client = _client(current_app._get_current_object())
    request = types.GenerateContentConfig(
        system_instruction=system,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))  # no tools here
    if json_schema is not None:
        request.response_mime_type = "application/json"
        request.response_schema = json_schema
    if timeout:
        request.http_options = _http_options(types, timeout)
    attempts = 1 + config["GEMINI_RETRIES"]
    for attempt in range(attempts):
        try:
            response = client.models.generate_content(model=config["GEMINI_MODEL"], contents=prompt,
                                                      config=request)
            return _read(response)
        except google_errors.APIError as exc:
            if exc.code == 429:
                if attempt + 1 == attempts:
                    error = ApiError(429, "The AI service is busy; try again shortly")
                    error.headers = {"Retry-After": str(config["GEMINI_RETRY_AFTER_S"])}
                    raise error from exc
            elif exc.code in (500, 502, 503, 504):
                if attempt + 1 == attempts:
                    raise ApiError(502, "The AI service failed; try again later") from exc
            else:
                log.warning("Gemini refused the request: %s", exc)
                raise ApiError(502, "The AI service refused the request") from exc
        except RecursionError:
            # With a schema the SDK parses the JSON answer itself, and an answer nested past Python's
            # recursion limit breaks that parse: hand the caller an unreadable (empty) answer, which
            # its checks refuse like any invalid one (one repair round, then 502).
            return Generation(text="", finish_reason="UNREADABLE")
        except Exception as exc:  # the transport's own errors (httpx)
            if _is_timeout(exc):
                raise ApiError(504, "The AI service did not answer in time") from exc
            raise
        time.sleep(config["GEMINI_RETRY_BACKOFF_S"] * 2 ** attempt)
    raise AssertionError("unreachable")


def _is_timeout(exc):
    """A timeout of the SDK's HTTP client (httpx's ``TimeoutException`` family) or the OS's."""
    return isinstance(exc, TimeoutError) or any("Timeout" in kind.__name__ for kind in type(exc).__mro__)


def _read(response):
    feedback = getattr(response, "prompt_feedback", None)
    block_reason = getattr(feedback, "block_reason", 0) if feedback is not None else 0
    if block_reason:
        name = getattr(block_reason, "name", str(block_reason))
        raise ApiError(422, f"The prompt was blocked by the AI service's safety filters ({name})",
                       {"prompt": [f"Blocked: {name}"]})
    try:
        candidate = response.candidates[0]
        text = "".join(part.text or "" for part in candidate.content.parts or [])
    except (IndexError, AttributeError, ValueError) as exc:
        raise ApiError(502, "The AI service returned no readable answer") from exc
    if not text:
        reason = getattr(getattr(candidate, "finish_reason", None), "name", "")
        if reason == "SAFETY":
            raise ApiError(422, "The answer was blocked by the AI service's safety filters (SAFETY)")
        raise ApiError(502, "The AI service returned no readable answer")
    finish = getattr(getattr(candidate, "finish_reason", None), "name", "STOP") or "STOP"
    return Generation(text=text, finish_reason=finish)
