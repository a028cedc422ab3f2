"""Request parsing shared by the Blueprints: JSON bodies checked once at the door, bulk arrays, the caller."""
from flask import request
from flask_login import current_user
from werkzeug.exceptions import BadRequest

from errors import ApiError
from schemas.common import TOO_DEEP, storable_problem

MAX_JSON_DEPTH = 64


def json_payload(empty=None, check=True):
    """The request body parsed as JSON (any JSON value), or a 4xx naming what is wrong with it.

    Every body the API accepts passes here, so values no schema anticipates are refused once, at
    the door: nesting deeper than ``MAX_JSON_DEPTH``, text MongoDB cannot store, integers beyond
    int64, and non-finite numbers (``NaN``, ``Infinity``, ``1e400``) are 400s naming the place.
    ``check=False`` leaves those checks to the caller (bulk bodies report them item by item).
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
    if check:
        check_storable(payload)
    return payload


def json_items(limit):
    """The request body as a JSON array of 1 to ``limit`` items (a bulk request), else a 400."""
    items = json_payload(empty=None, check=False)
    if not isinstance(items, list):
        raise ApiError.bad_request("Request body must be a JSON array of items")
    if not items:
        raise ApiError.validation({"_schema": ["Send at least one item."]}, "The array is empty")
    if len(items) > limit:
        raise ApiError.validation({"_schema": [f"At most {limit} items per request."]},
                                  f"Too many items: {len(items)} (at most {limit})")
    return items


def signed_in_user():
    """The caller's own user; 401 when there is none (``LOGIN_DISABLED`` opens routes anonymously)."""
    if not current_user.is_authenticated:
        raise ApiError.unauthorized("This needs a signed-in user or an API key: it acts as that user")
    return current_user._get_current_object()


def _too_deep():
    return ApiError.bad_request(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")


def check_storable(value):
    """Raise a 400 naming the first place where ``value`` holds something MongoDB cannot store."""
    problem = storable_problem(value, MAX_JSON_DEPTH)
    if problem is None:
        return
    field, message = problem
    if message is TOO_DEEP:
        raise _too_deep()
    raise ApiError.validation({field: [message]}, f"Invalid {field}: {message}")


def json_body():
    """The request body as a JSON object, or a 4xx naming what is wrong with it."""
    data = json_payload(empty={})
    if not isinstance(data, dict):
        raise ApiError.bad_request("Request body must be a JSON object")
    return data
