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


def paginate(queryset, page, per_page):
    """One page of ``queryset`` and the total, both computed by the database."""
    total = queryset.count()
    items = list(queryset.skip((page - 1) * per_page).limit(per_page))
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def user_id(user):
    """The id of the signed-in user, or None when logins are disabled."""
    return getattr(user, "pk", None) if user is not None and user.is_authenticated else None
