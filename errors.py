"""One JSON error shape for the whole API: ``{"error": "...", "errors": {field: [messages]}}``."""
import logging

from flask import g, has_request_context, jsonify, request
from marshmallow import ValidationError
from mongoengine.errors import NotUniqueError
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException, InternalServerError

import metrics
from schemas.common import ErrorOut

log = logging.getLogger(__name__)
_error_out = ErrorOut()
DATABASE_RETRY_AFTER_S = 5


class ApiError(Exception):
    """An expected failure that becomes a JSON response with ``status``."""

    def __init__(self, status, message, errors=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    @classmethod
    def bad_request(cls, message, errors=None):
        """400: the request is malformed or fails validation."""
        return cls(400, message, errors)

    @classmethod
    def validation(cls, errors, message="Validation failed"):
        """400 from a mapping of field path to messages."""
        return cls(400, message, errors)

    @classmethod
    def not_found(cls, resource, ident=None):
        """404 for an unknown resource id."""
        suffix = f" {ident}" if ident is not None else ""
        return cls(404, f"{resource.capitalize()}{suffix} not found")

    @classmethod
    def conflict(cls, message, errors=None):
        """409: the request collides with existing data."""
        return cls(409, message, errors)

    @classmethod
    def unauthorized(cls, message="Authentication required"):
        """401: not logged in, or the login attempt failed."""
        return cls(401, message)

    @classmethod
    def unavailable(cls, message):
        """503: a needed outside service is not configured or not reachable."""
        return cls(503, message)


def flatten_errors(errors, prefix=""):
    """Turn marshmallow's nested error dicts into ``{"rules[0].value": [...]}`` paths."""
    if not isinstance(errors, dict):
        return {prefix or "_schema": errors if isinstance(errors, list) else [str(errors)]}
    flat = {}
    for key, value in errors.items():
        if isinstance(key, int):
            path = f"{prefix}[{key}]"
        elif prefix:
            path = f"{prefix}.{key}"
        else:
            path = str(key)
        if isinstance(value, dict):
            flat.update(flatten_errors(value, path))
        else:
            flat[path] = [str(m) for m in value] if isinstance(value, list) else [str(value)]
    return flat


def error_response(status, message, errors=None, **extra):
    """Build the JSON error response (with the request id, so a report can be traced in the logs),
    dumped through ``ErrorOut`` like every other answer through its schema."""
    body = {"error": message, **extra}
    if errors:
        body["errors"] = flatten_errors(errors)
    if has_request_context() and g.get("request_id"):
        body["request_id"] = g.request_id
    undeclared = set(body) - set(_error_out.fields)
    if undeclared:
        raise TypeError(f"ErrorOut has no field for {sorted(undeclared)}")
    response = jsonify(_error_out.dump(body))
    response.status_code = status
    return response


def _summary(flat):
    """A short sentence naming the failing fields."""
    fields = [f for f in flat if f != "_schema"]
    if not fields:
        messages = flat.get("_schema") or ["Invalid input"]
        return f"Invalid request body: {messages[0]}"
    return "Invalid " + ", ".join(fields[:5]) + ("" if len(fields) <= 5 else ", ...")


def register_error_handlers(app):
    """Route every failure through :func:`error_response`."""

    @app.errorhandler(ApiError)
    def handle_api_error(exc):
        response = error_response(exc.status, exc.message, exc.errors)
        response.headers.update(getattr(exc, "headers", None) or {})
        if "Retry-After" in response.headers:
            g.retry_after = response.headers["Retry-After"]  # kept over the limiter's window reset
        return response

    @app.errorhandler(ValidationError)
    def handle_validation_error(exc):
        flat = flatten_errors(exc.messages)
        return error_response(400, _summary(flat), flat)

    @app.errorhandler(NotUniqueError)
    def handle_not_unique(exc):
        return error_response(409, "A record with this value already exists")

    @app.errorhandler(ConnectionFailure)
    def handle_database_unavailable(exc):
        # server selection, connect or network errors: the database is down or unreachable, which is
        # temporary and not the client's fault. One line, no traceback: an outage is not a bug.
        log.warning("database unavailable: %s", type(exc).__name__)
        metrics.DATABASE_ERRORS.labels("request").inc()
        response = error_response(503, "Database unavailable, try again shortly")
        response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        if has_request_context():
            g.retry_after = response.headers["Retry-After"]  # kept over the limiter's window reset
        return response

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc):
        # Flask turns an error outside the view (opening the session, for one) into a 500 that
        # carries the original: a database outage there is still a 503.
        if isinstance(exc, InternalServerError) and isinstance(exc.original_exception, ConnectionFailure):
            return handle_database_unavailable(exc.original_exception)
        message = exc.description or exc.name
        if exc.code == 413 and has_request_context() and request.max_content_length:
            message = (f"Request body too large: this endpoint takes at most "
                       f"{request.max_content_length:,} bytes")
        response = error_response(exc.code or 500, message)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc):
        log.exception("Unhandled error")
        return error_response(500, "Internal server error")
