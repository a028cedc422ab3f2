"""Order operations; recording an order credits its customer atomically."""
from controllers.common import filters_from, get_or_404, paginate, user_id
from errors import ApiError
from models import Customer, Order
from models.base import utcnow


def create_order(data, actor=None):
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
    )
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
