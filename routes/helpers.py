"""Request parsing and response building shared by the Blueprints."""
from flask import jsonify, request
from werkzeug.exceptions import BadRequest

from errors import ApiError


def json_payload(empty=None):
    """The request body parsed as JSON (any JSON value), or a 4xx naming what is wrong with it."""
    if not request.get_data(cache=True):
        return empty
    if not request.is_json:
        raise ApiError(415, "Content-Type must be application/json")
    try:
        return request.get_json()
    except BadRequest as exc:
        raise ApiError.bad_request("Malformed JSON in request body") from exc


def json_body():
    """The request body as a JSON object, or a 4xx naming what is wrong with it."""
    data = json_payload(empty={})
    if not isinstance(data, dict):
        raise ApiError.bad_request("Request body must be a JSON object")
    return data


def load_body(schema):
    """Validate the JSON body with ``schema`` (marshmallow errors become 400)."""
    return schema.load(json_body())


def load_query(schema):
    """Validate the query string with ``schema``."""
    return schema.load(request.args.to_dict(flat=True))


def dumped(schema, obj, status=200):
    """Serialize ``obj`` with ``schema`` into a JSON response."""
    response = jsonify(schema.dump(obj))
    response.status_code = status
    return response


def dumped_page(schema, page):
    """A paginated listing: ``{"items", "total", "page", "per_page"}``."""
    return jsonify({**page, "items": schema.dump(page["items"], many=True)})
