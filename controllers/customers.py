"""Customer operations."""
import json
import re

from mongoengine.errors import NotUniqueError

from controllers.common import (
    bulk_answer,
    get_or_404,
    modify_or_404,
    object_id_or_404,
    Rows,
    paginate,
    user_id,
    validate_items,
)
from engine import flows, ingest
from errors import ApiError
from models import Customer, CustomerEvent, Delivery, IdempotentResponse, ImportRowError, Order
from models.base import utcnow
from schemas.attribute import declared_snapshot
from services import events

MAX_BULK_ITEMS = 10_000

# API sort keys → document attributes (a whitelist: nothing else reaches order_by).
SORT_ATTRIBUTES = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "name": "name",
    "email": "email",
    "totalSpend": "total_spend",
    "numVisits": "num_visits",
    "lastVisitDate": "last_visit_date",
}


def _duplicate_email():
    return ApiError.conflict(
        "A customer with this email already exists", {"email": ["Already in use."]}
    )


def create_customer(data, actor=None):
    """Insert a customer; a taken email (unique index) is a 409."""
    subscribed = data.get("subscribed", True)
    customer = Customer(
        name=data["name"], email=data["email"], tags=data.get("tags", []), created_by=user_id(actor),
        subscribed=subscribed, unsubscribed_at=None if subscribed else utcnow(),
        attributes={key: value for key, value in (data.get("attributes") or {}).items() if value is not None},
        timezone=data.get("timezone"), locale=data.get("locale"),
    )
    try:
        customer.save(force_insert=True)
    except NotUniqueError as exc:
        raise _duplicate_email() from exc
    events.publish("customer.created", customerId=str(customer.pk), email=customer.email)
    flows.safely(flows.customers_created, [customer.pk])
    return customer


def upsert_customer(email, data, mode, actor=None):
    """Create or update the customer with ``email``; ``(customer, created)``.

    ``merge``: the fields given replace, tags are added; ``replace``: tags are replaced too (by
    none when not given). Creating needs a name.
    """
    if data.get("email", email) != email:
        raise ApiError.validation({"email": ["Must match the address in the path."]})
    if "name" not in data and not Customer.objects(email=email).count():
        # nothing to update, and not enough to create: the body was well formed, the customer is missing
        raise ApiError(404, f"No customer has the email {email}: give a name to create one",
                       {"name": ["Required to create a customer."]})
    outcome = ingest.upsert_customers([{**data, "email": email}], mode, user_id(actor))[0]
    return Customer.objects(email=email).first(), outcome["status"] == ingest.CREATED


def bulk_customers(raw_items, schema, mode, actor=None):
    """Upsert up to :data:`MAX_BULK_ITEMS` customers by email, each checked on its own."""
    with declared_snapshot():  # one read of the attribute definitions for the whole body
        items, errors = validate_items(raw_items, schema)
    return bulk_answer(ingest.upsert_customers(items, mode, user_id(actor)), errors)


def list_filter(query):
    """The MongoDB filter of the list's query (``email``, ``q``, ``subscribed``)."""
    raw = {}
    if "email" in query:
        raw["email"] = query["email"]
    if "subscribed" in query:  # documents from before consent was recorded count as subscribed
        raw["subscribed"] = {"$ne": False} if query["subscribed"] else False
    if "q" in query:
        prefix = {"$regex": "^" + re.escape(query["q"]), "$options": "i"}
        raw["$or"] = [{"name": prefix}, {"email": prefix}]
    return raw


# What CustomerOut shows: a list page is read as rows of these, never as documents.
LIST_ROWS = Rows(Customer, ("name", "email", "total_spend", "num_visits", "tags", "subscribed", "unsubscribed_at",
                            "last_visit_date", "created_at", "updated_at", "attributes", "timezone", "locale",
                            "rfm"))


def list_customers(query):
    """Filter, sort and paginate customers in the database."""
    raw = list_filter(query)
    sort = query["sort"]
    direction, key = ("-", sort[1:]) if sort.startswith("-") else ("", sort)
    # _id breaks ties (same direction, so one (key, _id) index serves both); emails are unique
    ties = () if key == "email" else (direction + "id",)
    queryset = Customer.objects(__raw__=raw).order_by(direction + SORT_ATTRIBUTES[key], *ties)
    return paginate(queryset, query["page"], query["per_page"], rows=LIST_ROWS)


def get_customer(customer_id):
    """One customer or 404."""
    return get_or_404(Customer, "customer", customer_id)


def update_customer(customer_id, data):
    """Change the fields given in one atomic update: ``attributes`` key by key (``null`` removes
    one), ``timezone``/``locale`` ``null`` removes them."""
    now = utcnow()
    data = dict(data)
    updates, raw = {}, {}
    for key, value in (data.pop("attributes", None) or {}).items():  # raw paths: a key is never an operator
        if value is None:
            raw.setdefault("$unset", {})[f"attributes.{key}"] = ""
        else:
            raw.setdefault("$set", {})[f"attributes.{key}"] = value
    if raw:
        updates["__raw__"] = raw
    for name in ("timezone", "locale"):
        if name in data and data[name] is None:
            del data[name]
            updates[f"unset__{name}"] = True
    updates.update({f"set__{name}": value for name, value in data.items()})
    if data.get("subscribed") is False:
        updates["min__unsubscribed_at"] = now  # the first unsubscription is kept
    elif data.get("subscribed") is True:
        updates["unset__unsubscribed_at"] = True
    customer = modify_or_404(Customer, "customer", customer_id, _duplicate_email(),
                             set__updated_at=now, **updates)
    events.publish("customer.updated", customerId=str(customer.pk), email=customer.email)
    flows.safely(flows.customers_changed, [customer.pk])
    return customer


def delete_customer(customer_id):
    """Delete a customer and then their orders and events.

    The customer goes first: an order being recorded at the same moment then finds no customer to
    credit and removes itself (see :func:`controllers.orders.create_order`).
    """
    pk = object_id_or_404("customer", customer_id)
    if Customer.objects(pk=pk).delete() == 0:
        raise ApiError.not_found("customer", customer_id)
    Order.objects(customer_id=pk).delete()
    CustomerEvent.objects(customer_id=pk).delete()
    flows.forget_customer(pk)


def export_customer(customer_id):
    """Everything stored about one customer: the profile, their orders and their delivery records."""
    customer = get_or_404(Customer, "customer", customer_id)
    return {
        "customer": customer,
        "orders": list(Order.objects(customer_id=customer.pk).order_by("-date", "-id")),
        "deliveries": list(Delivery.objects(customer_id=customer.pk).order_by("campaign_id")),
        "events": list(CustomerEvent.objects(customer_id=customer.pk).order_by("-at", "-id")),
        "exported_at": utcnow(),
    }


ERASED_EMAIL = "erased@erased.invalid"  # RFC 2606's reserved TLD: a valid address no mail reaches


def erase_customer(customer_id):
    """Delete a customer and their orders, and strip their delivery records of who they were.

    The delivery records stay, anonymised (no address, no message), so campaign statistics still add
    up; their ``customer`` id now points at nothing.
    """
    pk = object_id_or_404("customer", customer_id)
    found = Customer.objects(pk=pk).only("email").first()
    delete_customer(customer_id)
    Delivery.objects(customer_id=pk).update(set__email=ERASED_EMAIL, set__message="", set__error=None)
    _forget_copies(pk, found.email if found else None)


ERASED_ANSWER = json.dumps({"error": "What this request created was erased on a data subject's request"})


def _forget_copies(pk, email):
    """Copies of the customer kept elsewhere: an answer kept for an Idempotency-Key replay (it would
    return the erased name and email for a day) becomes a 410 saying so, writing nothing again; an
    import's row error that names the address is deleted. Matched in the database, by id or address."""
    needles = [re.escape(str(pk))] + ([re.escape(email)] if email else [])
    mentions = {"$regex": "|".join(needles), "$options": "i"}
    IdempotentResponse.objects(__raw__={"body": mentions}).update(
        set__status=410, set__body=ERASED_ANSWER, set__headers={"Content-Type": "application/json"})
    if email:
        ImportRowError.objects(__raw__={"message": mentions}).delete()
