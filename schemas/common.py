"""Field types and schemas shared by every resource."""
import math
import re

from bson import ObjectId
from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from dates import iso_utc, parse_iso_datetime

MAX_PAGE = 100_000
OBJECT_ID_PATTERN = "^[0-9a-fA-F]{24}$"


INT64 = 2 ** 63  # MongoDB stores integers as int64 at most
UNSTORABLE_TEXT = re.compile("[\ud800-\udfff\x00]")  # lone surrogates (a JSON pair decodes to one
# code point, so any left is unpaired) cannot be encoded as BSON's UTF-8; NUL ends C strings
TOO_DEEP = "Nested too deeply."


def storable_problem(value, max_depth):
    """``(path, message)`` of the first place where ``value`` (decoded JSON) holds something MongoDB
    cannot store (``message`` is :data:`TOO_DEEP` past ``max_depth`` levels), else None: text with
    NUL or lone surrogates, integers beyond int64, non-finite numbers."""
    stack = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > max_depth:
            return path or "_schema", TOO_DEEP
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
            return path or "_schema", problem
    return None


class UtcDateTime(fields.Field):
    """ISO-8601 in, naive UTC stored, ``...Z`` out."""

    default_error_messages = {"invalid": "Not a valid ISO-8601 date or datetime."}

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_iso_datetime(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.make_error("invalid") from exc

    def _serialize(self, value, attr, obj, **kwargs):
        return iso_utc(value)


class StrictNumber(fields.Float):
    """A JSON number: no strings, booleans, NaN or infinities (marshmallow's Float takes "1.5")."""

    default_error_messages = {
        "invalid": "Must be a number.",
        "special": "Must be a finite number.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("special")
        return float(value)


class StrictBoolean(fields.Boolean):
    """A JSON ``true``/``false`` only (marshmallow's Boolean also takes "yes", 1, "on"...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ObjectIdString(fields.String):
    """A 24-hex-digit id, loaded as :class:`bson.ObjectId`."""

    default_error_messages = {"invalid_id": "Not a valid id (24 hexadecimal characters)."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not ObjectId.is_valid(text) or len(text) != 24:
            raise self.make_error("invalid_id")
        return ObjectId(text)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


class TrimmedString(fields.String):
    """A string with surrounding white space removed (and optionally lower-cased) before validation."""

    def __init__(self, *args, lower=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.lower = lower

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        return text.lower() if self.lower else text


IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"  # printable ASCII, no space at either end (a UUID, say)
# What str.strip() removes, spelled out for JSON Schema patterns: regex engines disagree on \s
# (U+001C-U+001F, U+0085, U+FEFF).
SPACE_CHARS = "".join(f"\\u{c:04X}" for c in range(0x10000) if chr(c).isspace())
NOT_BLANK_PATTERN = f"[^{SPACE_CHARS}]"  # something besides white space (a trimmed value is not empty)
SINGLE_LINE_PATTERN = "^[^\\u0000-\\u001F\\u007F-\\u009F\\u2028\\u2029]*$"
_CONTROL = re.compile("[\u0000-\u001F\u007F-\u009F\u2028\u2029]")


def single_line(value):
    """A validator: no line breaks or other control characters (the value may become a header):
    C0 and C1 controls, U+2028 and U+2029 (as :data:`SINGLE_LINE_PATTERN` states it)."""
    if _CONTROL.search(value):
        raise ValidationError("Must be one line without control characters.")


class NormalizedEmail(fields.Email):
    """An email address, trimmed and lower-cased."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


def camel_case(name):
    """``per_page`` → ``perPage``: the API's one casing rule for JSON keys and query parameters."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class ApiSchema(Schema):
    """Base of every schema: attributes are snake_case in Python and camelCase on the wire.

    A field's ``data_key`` is only written out where the wire name is not the camelCase of the
    attribute (``_id``, ``from``).
    """

    def on_bind_field(self, field_name, field_obj):
        if field_obj.data_key is None:
            field_obj.data_key = camel_case(field_name)


class InputSchema(ApiSchema):
    """Base for request bodies and query strings: unknown keys are an error."""

    class Meta:
        unknown = RAISE


PER_PAGE_ALIAS = "per_page"  # the name before camelCase was the rule; still accepted and answered
PER_PAGE_HELP = "Items per page. `per_page` is accepted too (its earlier name)."


class PageQuery(InputSchema):
    """``page`` (1-based) and ``perPage`` (1–100, default 20; ``per_page`` accepted too)."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100),
                              metadata={"description": PER_PAGE_HELP})

    @pre_load
    def _per_page_alias(self, data, **kwargs):
        if PER_PAGE_ALIAS not in data:
            return data
        if "perPage" in data:
            raise ValidationError("Give perPage or per_page, not both.", PER_PAGE_ALIAS)
        data = dict(data)
        data["perPage"] = data.pop(PER_PAGE_ALIAS)
        return data

    def handle_error(self, error, data, **kwargs):
        """A problem with the value sent as ``per_page`` is reported under that name."""
        messages = error.messages
        if isinstance(data, dict) and PER_PAGE_ALIAS in data and "perPage" in messages:
            messages = {PER_PAGE_ALIAS if key == "perPage" else key: value for key, value in messages.items()}
            raise ValidationError(messages, data=data, valid_data=error.valid_data)


def id_field():
    """The ``_id`` output field used by every document schema."""
    return fields.Function(
        lambda doc: str(doc.pk), data_key="_id", metadata={"type": "string", "pattern": OBJECT_ID_PATTERN}
    )


class ErrorOut(ApiSchema):
    """The one error shape: a sentence, per-field messages on validation, the request id."""

    error = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    request_id = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "/readyz only: the state of each dependency"})


class MessageOut(ApiSchema):
    """A plain confirmation."""

    message = fields.String(required=True)


def page_of(item_schema, name):
    """The schema of a paginated listing of ``item_schema`` items: ``{items, total, page, perPage}``
    (and ``per_page``, the same number under its earlier name, for clients written before)."""
    return ApiSchema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "total": fields.Integer(required=True),
            "page": fields.Integer(required=True),
            "per_page": fields.Integer(required=True),
            "per_page_alias": fields.Function(lambda page: page["per_page"], data_key=PER_PAGE_ALIAS, metadata={
                "type": "integer", "deprecated": True, "description": "perPage under its earlier name"}),
        },
        name=name,
    )


def require_some(data, names):
    """Raise unless at least one of ``names`` is present (for PATCH bodies)."""
    if not any(name in data for name in names):
        raise ValidationError(f"Provide at least one of: {', '.join(names)}.", "_schema")


def some_of(*names):
    """The OpenAPI statement of :func:`require_some` (names as the JSON body spells them)."""
    return {"minProperties": 1, "anyOf": [{"required": [name]} for name in names]}
