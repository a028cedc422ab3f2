"""What a view accepts and answers (an :class:`Operation`), read by the OpenAPI builder.

API views declare it with ``routes.endpoint.endpoint``, which also loads and dumps by it; ``@doc``
only describes, for views the project does not write (Swagger UI's page).
"""
from dataclasses import dataclass, field

ATTRIBUTE = "__apidoc__"


@dataclass(frozen=True)
class Operation:
    """OpenAPI facts about one view function (see ``routes.endpoint.endpoint`` and :func:`doc`)."""

    body: object = None
    query: object = None
    response: object = None
    status: int = 200
    errors: tuple = ()
    public: bool = False
    description: str = ""
    content_type: str = "application/json"
    also: tuple = ()  # other content types the success answer may have (e.g. text/csv with ?format=csv)
    headers: dict = field(default_factory=dict)
    body_many: int = 0  # the body is a JSON array of at most this many ``body`` items (bulk)
    body_content_type: str = "application/json"  # or multipart/form-data (``body`` a schema dict)
    idempotent: bool = False  # honours an Idempotency-Key header
    body_encoding: dict = field(default_factory=dict)  # multipart: the parts' content types
    also_status: tuple = ()  # other success statuses with the same answer: (status, description) pairs


def doc(**facts):
    """Record OpenAPI facts on a view: ``body``/``query``/``response`` schemas, ``status``,
    extra ``errors`` statuses, ``public`` (no login), ``content_type`` (and ``also``), response ``headers``;
    ``body_many`` (an array of at most that many ``body``), ``body_content_type``, ``idempotent`` (Idempotency-Key).

    400/401/404/413/415 are added by the builder where the route makes them possible.
    """
    operation = Operation(**facts)

    def attach(view):
        setattr(view, ATTRIBUTE, operation)
        return view

    return attach


def operation_of(view):
    """The :class:`Operation` recorded on ``view``, or None."""
    return getattr(view, ATTRIBUTE, None)
