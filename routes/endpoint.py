"""``@endpoint``: one decorator per view that loads its input, dumps its answer and documents both.

What flask-smorest's ``@arguments``/``@response`` do, kept to this API's conventions (one error
shape, 400 for validation, JSON arrays for bulk bodies, the legacy routes' shapes)::

    @bp.post("")
    @endpoint(body=CustomerIn, response=CustomerOut, status=201, errors=(409,), idempotent=True)
    def create_customer(body):
        return controller.create_customer(body, current_user)

- ``query`` → the view gets ``query=`` (the query string loaded by that schema);
- ``body`` → ``body=`` (the JSON object loaded by that schema); with ``body_many=N`` the view
  gets ``items=``, the JSON array of at most N items (each checked by the controller, per item);
  a multipart body is the view's to read;
- the view returns what ``response`` dumps (a document, a dict of attributes, a list with
  ``many``), optionally as ``(value, status)``, ``(value, headers)`` or ``(value, status, headers)``;
  ``None`` for a 204; a ``Response`` it built itself (a stream, a redirect, a page) passes as is;
- ``idempotent=True`` honours an ``Idempotency-Key`` (``redact`` names body fields never kept).

The same :class:`~apidocs.operation.Operation` feeds the OpenAPI document, so what a route
documents is what it runs.
"""
import functools

from flask import current_app, jsonify, request
from marshmallow import Schema
from werkzeug.wrappers import Response

from apidocs.operation import ATTRIBUTE, Operation
from routes.idempotency import idempotent as honour_idempotency_key
from routes.helpers import json_body, json_items

JSON = "application/json"


def _instance(schema):
    """A schema instance for a class, the instance itself, else None (a raw JSON Schema dict)."""
    if isinstance(schema, type) and issubclass(schema, Schema):
        return schema()
    return schema if isinstance(schema, Schema) else None


def endpoint(*, redact=(), **facts):
    """Load ``query``/``body``, call the view, dump its value with ``response`` (see the module)."""
    operation = Operation(**facts)
    query_schema = _instance(operation.query)
    json_object = operation.body_content_type == JSON and not operation.body_many
    body_schema = _instance(operation.body) if json_object else None
    out_schema = _instance(operation.response)

    def decorate(view):
        @functools.wraps(view)
        def run(*args, **kwargs):
            if query_schema is not None:
                kwargs["query"] = query_schema.load(request.args.to_dict(flat=True))
            if body_schema is not None:
                kwargs["body"] = body_schema.load(json_body())
            elif operation.body_many:
                kwargs["items"] = json_items(operation.body_many)
            return _respond(view(*args, **kwargs), out_schema, operation.status)

        if operation.idempotent:
            run = honour_idempotency_key(run, redact=redact)
        setattr(run, ATTRIBUTE, operation)
        run.__endpoint__ = True  # loads and dumps (``@doc`` alone only describes)
        return run

    return decorate


def allow_bulk_bodies():
    """``before_request``, ahead of anything that reads the body (the rate limiter weighs bulk
    requests by their items): a bulk endpoint takes up to ``MAX_BULK_CONTENT_LENGTH``, enough for
    the 10,000 items it promises; every other body stays within ``MAX_CONTENT_LENGTH``."""
    view = current_app.view_functions.get(request.endpoint)
    operation = getattr(view, ATTRIBUTE, None)
    if operation is not None and operation.body_many:
        request.max_content_length = current_app.config["MAX_BULK_CONTENT_LENGTH"]


def _respond(value, schema, status):
    """The view's return value as a response: dumped by ``schema``, with its status and headers."""
    if isinstance(value, Response):
        return value
    headers = None
    if isinstance(value, tuple):
        value, *extra = value
        for part in extra:
            if isinstance(part, int):
                status = part
            else:
                headers = part
    if value is None:
        if status != 204:
            raise TypeError(f"a view answering {status} returned nothing")
        return Response(status=204, headers=headers)
    response = jsonify(schema.dump(value) if schema is not None else value)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response
