"""Customer operations."""
import re

from mongoengine.errors import NotUniqueError

from controllers.common import get_or_404, modify_or_404, object_id_or_404, paginate, user_id
from errors import ApiError
from models import Customer, Delivery, Order
from models.base import utcnow

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
    customer = Customer(
        name=data["name"], email=data["email"], tags=data.get("tags", []), created_by=user_id(actor)
    )
    try:
        return customer.save(force_insert=True)
    except NotUniqueError as exc:
        raise _duplicate_email() from exc


def list_customers(query):
    """Filter, sort and paginate customers in the database."""
    raw = {}
    if "email" in query:
        raw["email"] = query["email"]
    if "q" in query:
        prefix = {"$regex": "^" + re.escape(query["q"]), "$options": "i"}
        raw["$or"] = [{"name": prefix}, {"email": prefix}]
    sort = query["sort"]
    direction, key = ("-", sort[1:]) if sort.startswith("-") else ("", sort)
    # _id breaks ties (same direction, so one (key, _id) index serves both); emails are unique
    ties = () if key == "email" else (direction + "id",)
    queryset = Customer.objects(__raw__=raw).order_by(direction + SORT_ATTRIBUTES[key], *ties)
    return paginate(queryset, query["page"], query["per_page"])


def get_customer(customer_id):
    """One customer or 404."""
    return get_or_404(Customer, "customer", customer_id)


def update_customer(customer_id, data):
    """Change name and/or email in one atomic update."""
    updates = {f"set__{name}": value for name, value in data.items()}
    return modify_or_404(Customer, "customer", customer_id, _duplicate_email(),
                         set__updated_at=utcnow(), **updates)


def delete_customer(customer_id):
    """Delete a customer and then their orders.

    The customer goes first: an order being recorded at the same moment then finds no customer to
    credit and removes itself (see :func:`controllers.orders.create_order`).
    """
    pk = object_id_or_404("customer", customer_id)
    if Customer.objects(pk=pk).delete() == 0:
        raise ApiError.not_found("customer", customer_id)
    Order.objects(customer_id=pk).delete()


def export_customer(customer_id):
    """Everything stored about one customer: the profile, their orders and their delivery records."""
    customer = get_or_404(Customer, "customer", customer_id)
    return {
        "customer": customer,
        "orders": list(Order.objects(customer_id=customer.pk).order_by("-date", "-id")),
        "deliveries": list(Delivery.objects(customer_id=customer.pk).order_by("campaign_id")),
        "exported_at": utcnow(),
    }


ERASED_EMAIL = "erased@invalid"


def erase_customer(customer_id):
    """Delete a customer and their orders, and strip their delivery records of who they were.

    The delivery records stay, anonymised (no address, no message), so campaign statistics still add
    up; their ``customer`` id now points at nothing.
    """
    pk = object_id_or_404("customer", customer_id)
    delete_customer(customer_id)
    Delivery.objects(customer_id=pk).update(set__email=ERASED_EMAIL, set__message="", set__error=None)
