"""Build the OpenAPI 3 document from the app's URL map and the Marshmallow schemas (apispec)."""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec_webframeworks.flask import FlaskPlugin
from flask import current_app
from marshmallow import validate

from apidocs.operation import operation_of
from schemas.common import (
    IDEMPOTENCY_KEY_PATTERN,
    NOT_BLANK_PATTERN,
    OBJECT_ID_PATTERN,
    SINGLE_LINE_PATTERN,
    ErrorOut,
    ObjectIdString,
    TrimmedString,
    UtcDateTime,
    camel_case,
    single_line,
    some_of,
)
from schemas.flow import flow_components
from schemas.rules import rule_components

TITLE = "CRM API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Customers, orders, audiences and campaigns for the CRM. Data routes need a signed-in session "
    "(sign in at /api/auth/google in this browser; the session cookie is then sent by Try it out). "
    "Every route under /api also answers at its unprefixed alias. Errors share one shape: "
    '{"error": "...", "errors": {field: [messages]}, "requestId": "..."}. '
    "Text anywhere in a body, query or path refuses NUL characters and unpaired surrogates (400). "
    "What JSON Schema cannot say is in the descriptions: dates that must be in the future "
    "(scheduledAt, expiresAt) or at most a day ahead (an order's date), `to` after `from`, "
    "a `between` pair low to high, an import file that is UTF-8 CSV, a by-email body's email "
    "equal to the path's, A/B variants that differ once the campaign's content fills them in."
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
    410: ("Gone", "The answer kept for this Idempotency-Key named a customer since erased on request"),
    413: ("PayloadTooLarge", "Body over MAX_CONTENT_LENGTH"),
    415: ("UnsupportedMediaType", "Body is not application/json"),
    414: ("UriTooLong", "The request line is over the server's limit (gunicorn: 4,094 bytes)"),
    422: ("Unprocessable", "The request was understood but refused (e.g. blocked by safety filters)"),
    431: ("HeadersTooLarge",
          "Too many request headers, or one over the server's limit (gunicorn: 100, 8,190 bytes)"),
    429: ("TooManyRequests", "Rate limit exceeded; see Retry-After"),
    504: ("GatewayTimeout", "An outside service did not answer in time"),
    502: ("BadGateway", "An outside service failed"),
    503: ("ServiceUnavailable", "A needed service is not configured or not reachable"),
}
SECURED = [{"cookieAuth": []}, {"bearerAuth": []}, {"apiKeyHeader": []}]
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
RATE_LIMITED_VIEWS = {"google_login", "google_callback"}
SUCCESS_DESCRIPTIONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content", 302: "Redirect"}


class UndocumentedRoute(RuntimeError):
    """A URL rule whose view declares no Operation (``@endpoint``): every route must be described."""


IDEMPOTENCY_HELP = ("Any unique string (a UUID): a request repeated with the same key within 24 hours "
                    "gets the first response again, with nothing written twice; the same key with "
                    "another body is a 409; a key whose first answer named a customer since erased "
                    "answers 410, writing nothing. Keys are per user or API key.")


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
    patterns = []
    if single_line in field.validators:
        patterns.append(SINGLE_LINE_PATTERN)
    if isinstance(field, TrimmedString) and any(
            isinstance(v, validate.Length) and (v.min or 0) >= 1 for v in field.validators):
        patterns.append(NOT_BLANK_PATTERN)  # trimmed first: white space alone is empty
    if len(patterns) == 2:
        return {"pattern": patterns[0], "allOf": [{"pattern": patterns[1]}]}
    if patterns:
        return {"pattern": patterns[0]}
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
        elif name == "email":
            schema.update(format="email", maxLength=254)
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


def _may_be_empty(op):
    """True when no body at all is a valid one: a JSON object body none of whose fields is required
    (the server reads a missing body as ``{}``)."""
    schema = op.body
    if op.body_many or op.body_content_type != "application/json" or isinstance(schema, dict):
        return False
    schema = schema if isinstance(schema, type) else type(schema)
    return (not any(field.required for field in schema._declared_fields.values())
            and not _body_constraints(schema))


def _bulk_body(op):
    """A bulk body: 1 to ``body_many`` items, each checked on its own (a bad one fails alone)."""
    return {"type": "array", "minItems": 1, "maxItems": op.body_many, "items": {"anyOf": [
        op.body, {"description": "Anything else is accepted into the batch and fails alone: its errors "
                                 "are in the answer's items[] and counts.failed, the rest is written"}]}}


def _operation_id(rule, method, shared_endpoint):
    """``endpoint.method``; an endpoint serving several rules also gets its path."""
    suffix = "." + re.sub(r"\W+", "_", rule.rule).strip("_") if shared_endpoint else ""
    return f"{rule.endpoint}.{method.lower()}{suffix}"


def _operation(rule, method, view, op, legacy, shared_endpoint):
    blueprint = rule.endpoint.split(".")[0]
    statuses = set(op.errors) | {414, 431}  # the server's own limits, before the app sees the request
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
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                                  "pattern": IDEMPOTENCY_KEY_PATTERN},
                           "description": IDEMPOTENCY_HELP})
        statuses.update({409, 410})
    operation = {
        "operationId": _operation_id(rule, method, shared_endpoint),
        "summary": _summary(view),
        "tags": [LEGACY_TAG if legacy else TAGS.get(blueprint, blueprint)],
        "security": [] if op.public else SECURED,
        "responses": {str(op.status): _success(op)},
    }
    for status, description in op.also_status:
        operation["responses"][str(status)] = {**_success(op), "description": description}
    if op.description:
        operation["description"] = op.description
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        body = _bulk_body(op) if op.body_many else op.body
        operation["requestBody"] = {
            "required": not _may_be_empty(op),
            "content": {op.body_content_type: {
                "schema": body, **({"encoding": op.body_encoding} if op.body_encoding else {})}},
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

    def configured_maximum(converter, field, ret=None, **kwargs):
        """A field whose limit is a setting (``maximum_setting``) states this server's value."""
        setting = field.metadata.get("maximum_setting")
        if not setting:
            return {}
        return {"maximum": min(app.config[setting], (ret or {}).get("maximum", app.config[setting]))}

    marshmallow.converter.add_attribute_function(configured_maximum)
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
    for name, schema_class in flow_components():  # the flow's trigger and step types, referred to by name
        spec.components.schema(name, schema=schema_class)
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
    _link_created_resources(by_path)
    for path, operations in by_path.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    schemas = document["components"]["schemas"]
    schemas.update(rule_components())
    for key, name in marshmallow.converter.refs.items():
        schemas[name].update(_body_constraints(key[0]))
    return document


def _link_created_resources(by_path):
    """OpenAPI links from each create (POST answering 201 or 202) to the operations on what it
    created (``/customers`` → ``/customers/{customer_id}...``), the id taken from the answer: what a
    client follows next, and the paths schemathesis's stateful phase walks."""
    for path, operations in by_path.items():
        create = operations.get("post")
        success = create and next((code for code in ("201", "202") if code in create["responses"]), None)
        if not success:
            continue
        links = {}
        for other, other_operations in sorted(by_path.items()):
            match = re.fullmatch(re.escape(path) + r"/\{(\w+)\}(/.*)?", other)
            if not match:
                continue
            parameter = match.group(1)
            source = "$response.body#/email" if parameter == "email" else "$response.body#/_id"
            for method, operation in sorted(other_operations.items()):
                name = re.sub(r"\W+", "_", f"{method}{other[len(path):]}").strip("_")
                links[name] = {"operationId": operation["operationId"], "parameters": {parameter: source}}
        if links:
            create["responses"][success]["links"] = links


def _body_constraints(schema_class):
    """What a body schema requires beyond its fields (``SOME_OF``, ``OPENAPI``), in JSON Schema."""
    constraints = dict(getattr(schema_class, "OPENAPI", {}))
    if getattr(schema_class, "SOME_OF", None):
        constraints.update(some_of(*(camel_case(name) for name in schema_class.SOME_OF)))
    return constraints


def current_spec():
    """The spec of the current app, built once and cached."""
    cached = current_app.extensions.get("openapi_spec")
    if cached is None:
        cached = current_app.extensions["openapi_spec"] = build_spec(current_app)
    return cached

