"""Build the OpenAPI 3 document from the app's URL map and the Marshmallow schemas (apispec)."""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec_webframeworks.flask import FlaskPlugin
from flask import current_app
from marshmallow import validate

from apidocs.operation import operation_of
from schemas.common import OBJECT_ID_PATTERN, ErrorOut, ObjectIdString, UtcDateTime

TITLE = "CRM API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Customers, orders, audiences and campaigns for the CRM. Data routes need a signed-in session "
    "(sign in at /api/auth/google in this browser; the session cookie is then sent by Try it out). "
    "Every route under /api also answers at its unprefixed alias. Errors share one shape: "
    '{"error": "...", "errors": {field: [messages]}, "requestId": "..."}.'
)
TAGS = {
    "auth": "Auth",
    "customers": "Customers",
    "orders": "Orders",
    "campaigns": "Campaigns",
    "health": "Health",
    "docs": "Docs",
    "swagger_ui": "Docs",
    "users": "Users",
    "api_keys": "API keys",
    "audit": "Audit",
    "segments": "Segments",
    "ai": "AI assistant",
    "gemini": "AI assistant",
    "receipts": "Delivery receipts",
}
LEGACY_TAG = "Unprefixed aliases"
ERROR_RESPONSES = {
    400: ("BadRequest", "Invalid input; `errors` names each field"),
    401: ("Unauthorized", "Not signed in, or sign-in rejected"),
    404: ("NotFound", "No such resource"),
    403: ("Forbidden", "Signed in, but the role does not allow this, or a cross-site request"),
    409: ("Conflict", "Duplicate of existing data"),
    413: ("PayloadTooLarge", "Body over MAX_CONTENT_LENGTH"),
    415: ("UnsupportedMediaType", "Body is not application/json"),
    422: ("Unprocessable", "The request was understood but refused (e.g. blocked by safety filters)"),
    429: ("TooManyRequests", "Rate limit exceeded; see Retry-After"),
    504: ("GatewayTimeout", "An outside service did not answer in time"),
    502: ("BadGateway", "An outside service failed"),
    503: ("ServiceUnavailable", "A needed service is not configured or not reachable"),
}
SECURED = [{"cookieAuth": []}, {"bearerAuth": []}, {"apiKeyHeader": []}]
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
RATE_LIMITED_VIEWS = {"google_login", "google_callback"}
SUCCESS_DESCRIPTIONS = {200: "OK", 201: "Created", 204: "No content", 302: "Redirect"}


class UndocumentedRoute(RuntimeError):
    """A URL rule whose view declares no Operation (``@endpoint``): every route must be described."""


IDEMPOTENCY_HELP = ("Any unique string (a UUID): a request repeated with the same key within 24 hours "
                    "gets the first response again, with nothing written twice; the same key with "
                    "another body is a 409. Keys are per user or API key.")


def _field_properties(converter, field, **kwargs):
    """JSON Schema for the project's own field types, and exclusive ranges (OpenAPI 3.0 style)."""
    exclusive = {}
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                exclusive["exclusiveMinimum"] = True
            if validator.max is not None and not validator.max_inclusive:
                exclusive["exclusiveMaximum"] = True
    return {**exclusive, **_type_properties(field)}


def _type_properties(field):
    if isinstance(field, UtcDateTime):
        return {"type": "string", "format": "date-time"}
    if isinstance(field, ObjectIdString):
        return {"pattern": OBJECT_ID_PATTERN}
    return {}


def _path_parameters(rule):
    params = []
    for name in sorted(rule.arguments):
        schema = {"type": "string"}
        if name.endswith("_id"):
            schema["pattern"] = OBJECT_ID_PATTERN
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _summary(view):
    return (view.__doc__ or view.__name__).strip().splitlines()[0]


def _success(op):
    description = SUCCESS_DESCRIPTIONS.get(op.status, "OK")
    response = {"description": description}
    if op.status == 302:
        response["headers"] = {"Location": {"schema": {"type": "string"}, "description": "Where to go"}}
    elif op.response is not None:
        response["content"] = {op.content_type: {"schema": op.response}}
        response["content"].update((kind, {"schema": {"type": "string"}}) for kind in op.also)
    if op.headers:
        response.setdefault("headers", {}).update(op.headers)
    return response


def _operation_id(rule, method, shared_endpoint):
    """``endpoint.method``; an endpoint serving several rules also gets its path."""
    suffix = "." + re.sub(r"\W+", "_", rule.rule).strip("_") if shared_endpoint else ""
    return f"{rule.endpoint}.{method.lower()}{suffix}"


def _operation(rule, method, view, op, legacy, shared_endpoint):
    blueprint = rule.endpoint.split(".")[0]
    statuses = set(op.errors)
    if not op.public:
        statuses.update({401, 403})
    if method in WRITE_METHODS:
        statuses.update({403, 429})  # CSRF refusal for cookie sessions; write rate limit
    if rule.endpoint.split(".")[-1] in RATE_LIMITED_VIEWS:
        statuses.add(429)
    if rule.arguments:
        statuses.add(404)
    parameters = _path_parameters(rule)
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
        statuses.add(400)
    if op.idempotent:
        parameters.append({"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                           "description": IDEMPOTENCY_HELP})
        statuses.add(409)
    operation = {
        "operationId": _operation_id(rule, method, shared_endpoint),
        "summary": _summary(view),
        "tags": [LEGACY_TAG if legacy else TAGS.get(blueprint, blueprint)],
        "security": [] if op.public else SECURED,
        "responses": {str(op.status): _success(op)},
    }
    if op.description:
        operation["description"] = op.description
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        body = {"type": "array", "items": op.body, "minItems": 1, "maxItems": op.body_many} if op.body_many else op.body
        operation["requestBody"] = {
            "required": True,
            "content": {op.body_content_type: {"schema": body}},
        }
        statuses.update({400, 413, 415})
    for status in sorted(statuses):
        operation["responses"][str(status)] = ERROR_RESPONSES[status][0]
    return operation


LICENSE = {"name": "Proprietary (all rights reserved)"}  # no open-source licence has been chosen for this code


def build_spec(app):
    """The OpenAPI 3.0.3 document (a dict) for every URL rule of ``app``."""
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title=TITLE,
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[marshmallow],
        info={"description": DESCRIPTION, "license": LICENSE},
        servers=[{"url": "/"}],
    )
    marshmallow.converter.add_attribute_function(_field_properties)
    spec.components.security_scheme(
        "cookieAuth",
        {"type": "apiKey", "in": "cookie", "name": app.config["SESSION_COOKIE_NAME"],
         "description": "The session cookie set by Google sign-in"},
    )
    spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "An API key from POST /api/api-keys"},
    )
    spec.components.security_scheme(
        "apiKeyHeader",
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The same key, another header"},
    )
    spec.components.schema("Error", schema=ErrorOut)
    for name, description in ERROR_RESPONSES.values():
        spec.components.response(
            name,
            {"description": description, "content": {"application/json": {"schema": "Error"}}},
        )
    rules_per_endpoint = {}
    for rule in app.url_map.iter_rules():
        rules_per_endpoint[rule.endpoint] = rules_per_endpoint.get(rule.endpoint, 0) + 1
    by_path = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = app.view_functions[rule.endpoint]
        op = operation_of(view)
        if op is None:
            raise UndocumentedRoute(f"{rule.rule} ({rule.endpoint}) declares no @endpoint")
        legacy = rule.endpoint.startswith("legacy_")
        path = FlaskPlugin.flaskpath2openapi(rule.rule)
        if len(path) > 1:  # trailing slashes are optional on every route: the document names none
            path = path.rstrip("/")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            by_path.setdefault(path, {})[method.lower()] = _operation(
                rule, method, view, op, legacy, rules_per_endpoint[rule.endpoint] > 1
            )
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def current_spec():
    """The spec of the current app, built once and cached."""
    cached = current_app.extensions.get("openapi_spec")
    if cached is None:
        cached = current_app.extensions["openapi_spec"] = build_spec(current_app)
    return cached

