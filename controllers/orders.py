"""Order operations; recording an order credits its customer atomically."""
import uuid

from mongoengine.errors import NotUniqueError

from controllers.common import bulk_answer, filters_from, get_or_404, paginate, user_id, validate_items
from engine import attribution, flows, ingest, rfm
from errors import ApiError
from models import Customer, Order
from models.base import utcnow
from services import events

MAX_BULK_ITEMS = 10_000


def _recorded_already(data):
    """The order already recorded under ``data``'s ``externalId``, or None; a 409 when that id is
    taken by another customer or amount."""
    external = data.get("external_id")
    existing = Order.objects(external_id=external).first() if external else None
    if existing is None:
        return None
    if existing.customer_id != data["customer_id"] or existing.amount != data["amount"]:
        raise ApiError.conflict(f"externalId {external} is already used by order {existing.pk} with "
                                "another customer or amount", {"externalId": ["Already used."]})
    return existing


def create_order(data, actor=None):
    """Record an order; ``(order, created)``: an order sent again with the same ``externalId`` is
    the one recorded (not counted twice), the same id on another order a 409."""
    existing = _recorded_already(data)
    if existing is not None:
        return existing, False
    try:
        order = _insert_order(data, actor)
    except NotUniqueError:  # the same externalId arrived twice at once: the other one won
        return _recorded_already(data) or _insert_order(data, actor), False
    rfm.rescore([order.customer_id])
    flows.safely(flows.orders_created, [{"_id": order.pk, "customer": order.customer_id, "amount": order.amount,
                                         "date": order.date}])
    events.publish("order.created", orderId=str(order.pk), customerId=str(order.customer_id),
                   amount=order.amount)
    return order, True


def _insert_order(data, actor):
    """Credit the customer's totals (``$inc``/``$max`` in one update, which also proves the customer
    exists), then insert the order.

    No read-modify-write: concurrent orders on one customer all count. An unknown customer is a 404
    with nothing written. Should the insert fail after the credit (the database went away between
    the two), the credit is taken back before the error is raised.
    """
    customer_id = data["customer_id"]
    order = Order(
        customer_id=customer_id,
        amount=data["amount"],
        date=data.get("date") or utcnow(),
        created_by=user_id(actor),
        external_id=data.get("external_id"),
    )
    credited_to = attribution.attribute([(customer_id, order.date)])[0]
    if credited_to is not None:
        order.attribution = credited_to
    credited = Customer.objects(pk=customer_id).update_one(
        inc__total_spend=order.amount,
        inc__num_visits=1,
        max__last_visit_date=order.date,
        set__updated_at=utcnow(),
    )
    if not credited:
        raise ApiError.not_found("customer", str(customer_id))
    try:
        order.save(force_insert=True)
    except Exception:
        Customer.objects(pk=customer_id).update_one(inc__total_spend=-order.amount, inc__num_visits=-1)
        raise
    return order


def list_orders(query):
    """Filter by customer and date range, newest first, paginated in the database."""
    filters = filters_from(query, {"customer_id": "customer_id", "date_from": "date__gte",
                                   "date_to": "date__lte"})
    queryset = Order.objects(**filters).order_by("-date", "-id")
    return paginate(queryset, query["page"], query["per_page"])


def get_order(order_id):
    """One order or 404."""
    return get_or_404(Order, "order", order_id)


def bulk_orders(raw_items, schema, actor=None):
    """Record up to :data:`MAX_BULK_ITEMS` orders, each checked on its own; their customers'
    totals are credited once (see :mod:`engine.ingest`)."""
    items, errors = validate_items(raw_items, schema)
    return bulk_answer(ingest.insert_orders(items, f"bulk:{uuid.uuid4().hex}", user_id(actor)), errors)
