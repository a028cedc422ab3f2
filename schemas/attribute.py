"""Custom attributes: their definitions, and the checking of the values customers carry.

A customer's ``attributes`` is ``{key: value}`` over declared keys only, each value of its key's
type (``null`` removes it):

- ``string``: text of at most 500 characters (trimmed);
- ``number``: a JSON number, finite, at most 1e15 in size;
- ``date``: an ISO-8601 date or datetime, stored as a UTC instant (a date alone is its midnight UTC);
- ``boolean``: ``true`` / ``false``;
- ``list``: up to 100 texts of 1–100 characters (trimmed; duplicates dropped, order kept).

Definitions are read from the database once per load, or once for a whole bulk body or import chunk
(:func:`declared_snapshot`), so a bulk request is checked against one set of definitions.
"""
import contextvars
import math
import re
import zoneinfo
from contextlib import contextmanager
from functools import lru_cache

from marshmallow import ValidationError, fields, validate

from dates import iso_utc, parse_iso_datetime
from models import AttributeDefinition
from models.attribute import BOOLEAN, DATE, KEY_PATTERN, LIST, MAX_ATTRIBUTES, NUMBER, STRING, TYPES
from schemas.common import (
    ApiSchema,
    InputSchema,
    PageQuery,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
    single_line,
)
from segments import FIELDS
from segments.compiler import BOOLEAN as RULE_BOOLEAN
from segments.compiler import DATE as RULE_DATE
from segments.compiler import LIST as RULE_LIST
from segments.compiler import NUMBER as RULE_NUMBER
from segments.compiler import STRING as RULE_STRING

MAX_TEXT, MAX_NUMBER, MAX_ITEMS, MAX_ITEM = 500, 1e15, 100, 100
RULE_KIND = {STRING: RULE_STRING, NUMBER: RULE_NUMBER, DATE: RULE_DATE, BOOLEAN: RULE_BOOLEAN, LIST: RULE_LIST}
UNDECLARED = "Not a declared attribute: declare it first with POST /api/attributes."
_SNAPSHOT = contextvars.ContextVar("declared_attributes", default=None)


def _read_declared():
    return {doc["key"]: doc["type"] for doc in AttributeDefinition._get_collection().find({}, {"key": 1, "type": 1})}


def declared_types():
    """``{key: type}`` of the declared attributes (the snapshot's, inside :func:`declared_snapshot`)."""
    snapshot = _SNAPSHOT.get()
    return snapshot if snapshot is not None else _read_declared()


@contextmanager
def declared_snapshot():
    """Read the definitions once for everything loaded inside (a bulk body, an import chunk)."""
    token = _SNAPSHOT.set(_read_declared())
    try:
        yield _SNAPSHOT.get()
    finally:
        _SNAPSHOT.reset(token)


def rule_fields(types=None):
    """The segment rule fields: the built-in ones and ``attributes.<key>`` per declared attribute."""
    types = declared_types() if types is None else types
    return {**FIELDS, **{f"attributes.{key}": RULE_KIND[kind] for key, kind in sorted(types.items())}}


# --- values ------------------------------------------------------------------------------------
def _text(value, limit):
    if not isinstance(value, str):
        raise ValidationError("Must be text.")
    text = value.strip()
    if len(text) > limit:
        raise ValidationError(f"At most {limit} characters.")
    return text


def _string(value):
    return _text(value, MAX_TEXT)


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("Must be a number.")
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise ValidationError("Must be a finite number of at most 1e15 in size.")
    return value


def _date(value):
    try:
        moment = parse_iso_datetime(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError("Must be a date (YYYY-MM-DD) or an ISO-8601 datetime.") from exc
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # what MongoDB keeps


def _boolean(value):
    if not isinstance(value, bool):
        raise ValidationError("Must be true or false.")
    return value


def _list(value):
    if not isinstance(value, list):
        raise ValidationError("Must be a list of texts.")
    if len(value) > MAX_ITEMS:
        raise ValidationError(f"At most {MAX_ITEMS} items.")
    items = []
    for item in value:
        text = _text(item, MAX_ITEM)
        if not text:
            raise ValidationError("Items may not be empty.")
        items.append(text)
    return list(dict.fromkeys(items))


COERCE = {STRING: _string, NUMBER: _number, DATE: _date, BOOLEAN: _boolean, LIST: _list}


def coerce_attributes(values, types):
    """``values`` checked against ``types``: ``{key: stored value or None (remove)}``; raises
    ValidationError ``{key: [message]}`` naming every bad key."""
    if not isinstance(values, dict):
        raise ValidationError("Must be an object of {key: value}.")
    if len(values) > MAX_ATTRIBUTES:
        raise ValidationError(f"At most {MAX_ATTRIBUTES} attributes.")
    coerced, errors = {}, {}
    for key, value in values.items():
        if key not in types:
            errors[key] = [UNDECLARED]
            continue
        if value is None:
            coerced[key] = None
            continue
        try:
            coerced[key] = COERCE[types[key]](value)
        except ValidationError as exc:
            errors[key] = exc.messages
    if errors:
        raise ValidationError(errors)
    return coerced


class AttributeValues(fields.Field):
    """A customer's ``attributes``: declared keys, values of their type, ``null`` removes one."""

    def __init__(self, **kwargs):
        metadata = {"type": "object", "additionalProperties": {
            "oneOf": [{"type": "string", "nullable": True}, {"type": "number"}, {"type": "boolean"},
                      {"type": "array", "items": {"type": "string"}}]},
            "description": "Values of declared attributes (`/api/attributes`), each of its type; null removes one. "
                           "Dates are ISO-8601 (stored as UTC instants).", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return coerce_attributes(value, declared_types())

    def _serialize(self, value, attr, obj, **kwargs):
        if not value:
            return {}
        return {key: iso_utc(item) if hasattr(item, "isoformat") else item for key, item in sorted(value.items())}


@lru_cache(maxsize=1)
def _zones():
    return {name.lower(): name for name in zoneinfo.available_timezones()}


class TimeZoneName(fields.String):
    """An IANA time zone name (``Europe/Paris``), spelled as the zone database does whatever the case."""

    default_error_messages = {"zone": "Not a known IANA time zone name (e.g. Europe/Paris, America/New_York, UTC)."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        name = _zones().get(text.lower())
        if name is None:
            raise self.make_error("zone")
        return name


LOCALE_PATTERN = r"^([A-Za-z]{2,3})((?:[-_][A-Za-z0-9]{2,8}){0,3})$"
_LOCALE = re.compile(LOCALE_PATTERN)
# the shape of a zone name (which ones exist: the zone database)
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


class LocaleTag(fields.String):
    """A BCP 47 language tag (``fr``, ``fr-FR``, ``zh-Hant-TW``; ``_`` read as ``-``), in its usual
    case: language lower, script title, region upper."""

    default_error_messages = {"locale": "Not a language tag (e.g. en, en-GB, pt-BR, zh-Hant-TW)."}

    def _deserialize(self, value, attr, data, **kwargs):
        match = _LOCALE.match(super()._deserialize(value, attr, data, **kwargs).strip())
        if not match:
            raise self.make_error("locale")
        parts = [match.group(1).lower()]
        for part in re.split("[-_]", match.group(2))[1:]:
            if len(part) == 4 and part.isalpha():
                parts.append(part.title())
            elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
                parts.append(part.upper())
            else:
                parts.append(part.lower())
        return "-".join(parts)


# --- definitions --------------------------------------------------------------------------------
class AttributeIn(InputSchema):
    """Body of ``POST /attributes``."""

    key = fields.String(required=True, validate=validate.Regexp(KEY_PATTERN, error=(
        "1–40 letters, digits or _, starting with a lower-case letter (e.g. plan, birthDate, loyalty_tier).")),
        metadata={"description": "The name under the customer's `attributes` and in rules (`attributes.<key>`)."})
    type = fields.String(required=True, validate=validate.OneOf(TYPES), metadata={
        "description": "Fixed once declared."})
    description = TrimmedString(validate=[validate.Length(max=500), single_line])


class AttributePatch(InputSchema):
    """Body of ``PATCH /attributes/<key>``: the description (a type never changes)."""

    description = TrimmedString(required=True, allow_none=True, validate=[validate.Length(max=500), single_line])


class AttributeOut(ApiSchema):
    """A declared attribute."""

    id = id_field()
    key = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": list(TYPES)})
    description = fields.String(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


AttributePage = page_of(AttributeOut, "AttributePage")


class AttributeQuery(PageQuery):
    """Query string of ``GET /attributes``."""
