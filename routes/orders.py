"""``/api/orders``: record and read orders."""
from flask import Blueprint
from flask_login import current_user

from apidocs import doc

from controllers import orders as controller
from controllers.idempotency import idempotent
from routes.helpers import dumped, dumped_page, json_items, load_body, load_query
from schemas.customer import BulkOut
from schemas.order import OrderIn, OrderOut, OrderPage, OrderQuery

bp = Blueprint("orders", __name__)

order_in, order_query, order_out, bulk_out = OrderIn(), OrderQuery(), OrderOut(), BulkOut()


@bp.post("")
@doc(body=OrderIn, response=OrderOut, status=201, errors=(404, 409), idempotent=True,
     description="`customer` is accepted in place of `customerId`. 404 when the customer does not exist. "
                 "With an `externalId` already recorded for the same customer and amount: 200 with that "
                 "order (not counted again); for another customer or amount: 409.")
@idempotent
def create_order():
    """Record an order and credit its customer."""
    order, created = controller.create_order(load_body(order_in), current_user)
    return dumped(order_out, order, 201 if created else 200)


@bp.post("/bulk")
@doc(body=OrderIn, body_many=True, response=BulkOut, idempotent=True,
     description="A JSON array of up to 10,000 orders, each checked like POST /orders. An order whose "
                 "`externalId` is already recorded is skipped (same customer and amount) or failed "
                 "(otherwise); each customer's totals are credited once with what was written. One "
                 "entry per item: `index`, `status` (created, skipped, failed), `id` or `errors`. Counts "
                 "against the write rate limit as one request per 100 items.")
@idempotent
def bulk_orders():
    """Record many orders at once."""
    raw = json_items(controller.MAX_BULK_ITEMS)
    return dumped(bulk_out, controller.bulk_orders(raw, order_in, current_user))


@bp.get("")
@doc(query=OrderQuery, response=OrderPage)
def list_orders():
    """List orders, newest first, filtered by customer and date range."""
    return dumped_page(order_out, controller.list_orders(load_query(order_query)))


@bp.get("/<order_id>")
@doc(response=OrderOut)
def get_order(order_id):
    """Read one order."""
    return dumped(order_out, controller.get_order(order_id))
