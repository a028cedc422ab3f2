"""Helpers shared by the controllers."""
from bson import ObjectId
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


def paginate(queryset, page, per_page):
    """One page of ``queryset`` and the total, both computed by the database."""
    total = queryset.count()
    items = list(queryset.skip((page - 1) * per_page).limit(per_page))
    return {"items": items, "total": total, "page": page, "per_page": per_page}


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
