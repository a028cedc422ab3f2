"""Order operations; recording an order credits its customer atomically."""
from controllers.common import filters_from, get_or_404, paginate, user_id
from errors import ApiError
from models import Customer, Order
from models.base import utcnow


def create_order(data, actor=None):
    """Insert the order, then ``$inc``/``$max`` the customer's totals in one update.

    No read-modify-write: concurrent orders on one customer all count. If the customer vanished
    between the check and the update (deleted concurrently), the order is withdrawn and 404 returned.
    """
    customer_id = data["customer_id"]
    if not Customer.objects(pk=customer_id).only("id").first():
        raise ApiError.not_found("customer", str(customer_id))
    order = Order(
        customer_id=customer_id,
        amount=data["amount"],
        date=data.get("date") or utcnow(),
        created_by=user_id(actor),
    )
    order.save(force_insert=True)
    credited = Customer.objects(pk=customer_id).update_one(
        inc__total_spend=order.amount,
        inc__num_visits=1,
        max__last_visit_date=order.date,
        set__updated_at=utcnow(),
    )
    if not credited:
        order.delete()
        raise ApiError.not_found("customer", str(customer_id))
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
