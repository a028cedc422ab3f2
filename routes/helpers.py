"""Request parsing and response building shared by the Blueprints."""
import math
import re

from flask import jsonify, request
from flask_login import current_user
from werkzeug.exceptions import BadRequest

from errors import ApiError

MAX_JSON_DEPTH = 64
INT64 = 2 ** 63  # MongoDB stores integers as int64 at most
UNSTORABLE_TEXT = re.compile("[\ud800-\udfff\x00]")  # lone surrogates (a JSON pair decodes to one
# code point, so any left is unpaired) cannot be encoded as BSON's UTF-8; NUL ends C strings


def json_payload(empty=None):
    """The request body parsed as JSON (any JSON value), or a 4xx naming what is wrong with it.

    Every body the API accepts passes here, so values no schema anticipates are refused once, at
    the door: nesting deeper than ``MAX_JSON_DEPTH``, text MongoDB cannot store, integers beyond
    int64, and non-finite numbers (``NaN``, ``Infinity``, ``1e400``) are 400s naming the place.
    """
    if not request.get_data(cache=True):
        return empty
    if not request.is_json:
        raise ApiError(415, "Content-Type must be application/json")
    try:
        payload = request.get_json()
    except BadRequest as exc:
        raise ApiError.bad_request("Malformed JSON in request body") from exc
    except RecursionError as exc:  # the parser recurses per level: far too deep to even read
        raise _too_deep() from exc
    check_storable(payload)
    return payload


def signed_in_user():
    """The caller's own user; 401 when there is none (``LOGIN_DISABLED`` opens routes anonymously)."""
    if not current_user.is_authenticated:
        raise ApiError.unauthorized("This needs a signed-in user or an API key: it acts as that user")
    return current_user._get_current_object()


def _too_deep():
    return ApiError.bad_request(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")


def check_storable(value):
    """Raise a 400 naming the first place where ``value`` holds something MongoDB cannot store."""
    stack = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        problem = None
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if UNSTORABLE_TEXT.search(key):
                    problem, path = "Field names may not contain NUL or unpaired surrogates.", child_path
                    break
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if UNSTORABLE_TEXT.search(item):
                problem = "Text may not contain NUL characters or unpaired surrogates."
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if not -INT64 <= item < INT64:
                problem = "Number out of range."
        elif isinstance(item, float) and not math.isfinite(item):
            problem = "Must be a finite number."
        if problem:
            field = path or "_schema"
            raise ApiError.validation({field: [problem]}, f"Invalid {field}: {problem}")


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
