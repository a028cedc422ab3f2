"""Helpers shared by the controllers."""
from types import SimpleNamespace

from bson import ObjectId
from flask import current_app
from marshmallow import ValidationError

from engine.ingest import FAILED, result
from errors import ApiError, flatten_errors
from schemas.common import storable_problem

BULK_ITEM_DEPTH = 63  # the array is one level of the request's 64
QUEUE_RETRY_AFTER_S = 10


def queue_unavailable(what):
    """503 with ``Retry-After``: the broker did not take the job."""
    error = ApiError.unavailable(f"The task queue is unavailable: {what}")
    error.headers = {"Retry-After": str(QUEUE_RETRY_AFTER_S)}
    return error


def object_id_or_404(resource, ident):
    """Parse a path id; an id that cannot exist is simply not found."""
    if not isinstance(ident, str) or len(ident) != 24 or not ObjectId.is_valid(ident):
        raise ApiError.not_found(resource, ident)
    return ObjectId(ident)


def get_or_404(document_cls, resource, ident):
    """Fetch one document by its path id or raise 404."""
    doc = document_cls.objects(pk=object_id_or_404(resource, ident)).first()
    if doc is None:
        raise ApiError.not_found(resource, ident)
    return doc


def filters_from(query, mapping):
    """MongoEngine filters from validated query fields: ``{"date_from": "date__gte"}`` style."""
    return {target: query[name] for name, target in mapping.items() if name in query}


def modify_or_404(document_cls, resource, ident, duplicate_error=None, **changes):
    """One atomic update returning the new document; 404 if it does not exist, ``duplicate_error``
    (a 409) when a unique index refuses the change."""
    from mongoengine.errors import NotUniqueError

    pk = object_id_or_404(resource, ident)
    try:
        document = document_cls.objects(pk=pk).modify(new=True, **changes)
    except NotUniqueError as exc:
        if duplicate_error is None:
            raise
        raise duplicate_error from exc
    if document is None:
        raise ApiError.not_found(resource, ident)
    return document


def paginate(queryset, page, per_page, rows=None):
    """One page of ``queryset`` and the total, both computed by the database. With ``rows`` (a
    :class:`Rows`) the page is read as stored, only the fields the answer shows, and handed to the
    schema as light rows: no MongoEngine document is built for a page that is only dumped."""
    total = queryset.count()
    page_of = queryset.skip((page - 1) * per_page).limit(per_page)
    items = rows.of(page_of) if rows else list(page_of)
    return {"items": items, "total": total, "page": page, "per_page": per_page}


class Rows:
    """Read-only rows of ``document_cls`` with the attributes ``names`` (and ``pk``), built straight
    from the stored dicts: each attribute its stored value, or the field's default where the stored one
    is missing or null (as MongoEngine gives it). For lists whose schema only reads attributes."""

    def __init__(self, document_cls, names):
        self.names = names
        self.spec = []
        for name in names:
            field = document_cls._fields[name]
            default = field.default
            self.spec.append((name, field.db_field, default if callable(default) else (lambda d=default: d)))

    def of(self, queryset):
        """The rows of ``queryset``. MongoDB reads only the shown fields (a customer's ``creditedBy`` grows
        with its orders); the embedded store reads whole documents, as projecting costs it more than it
        saves (mongomock projects every document of the collection before it sorts and skips)."""
        if not current_app.extensions.get("mongo_embedded"):
            queryset = queryset.only(*self.names)
        return [self._row(raw) for raw in queryset.as_pymongo()]

    def _row(self, raw):
        row = SimpleNamespace(**{name: default() if raw.get(db) is None else raw[db]
                                 for name, db, default in self.spec})
        row.pk = raw["_id"]
        return row


def user_id(user):
    """The id of the signed-in user, or None when logins are disabled."""
    return getattr(user, "pk", None) if user is not None and user.is_authenticated else None


def validate_items(raw_items, schema):
    """Load each raw bulk item with ``schema``: ``(loaded or None, {index: errors})``."""
    loaded, errors = [], {}
    for index, raw in enumerate(raw_items):
        problem = storable_problem(raw, BULK_ITEM_DEPTH)
        try:
            if problem:
                raise ValidationError({problem[0]: [problem[1]]})
            loaded.append(schema.load(raw))
        except ValidationError as exc:
            loaded.append(None)
            errors[index] = flatten_errors(exc.messages)
    return loaded, errors


def bulk_answer(results, errors):
    """The body of a bulk answer: counts and one entry per item (``index``, ``status``, ...)."""
    items = [{"index": index, **(result(FAILED, errors=errors[index]) if index in errors else outcome)}
             for index, outcome in enumerate(results)]
    counts = {name: 0 for name in ("created", "updated", "unchanged", "skipped", "failed")}
    for item in items:
        counts[item["status"]] += 1
    return {"counts": counts, "items": items}
