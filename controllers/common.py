"""Helpers shared by the controllers."""
from bson import ObjectId

from errors import ApiError


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
