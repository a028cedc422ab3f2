"""``/api/orders``: record and read orders."""
from flask import Blueprint
from flask_login import current_user

from apidocs import doc

from controllers import orders as controller
from routes.helpers import dumped, dumped_page, load_body, load_query
from schemas.order import OrderIn, OrderOut, OrderPage, OrderQuery

bp = Blueprint("orders", __name__)

order_in, order_query, order_out = OrderIn(), OrderQuery(), OrderOut()


@bp.post("")
@doc(body=OrderIn, response=OrderOut, status=201, errors=(404,),
     description="`customer` is accepted in place of `customerId`. 404 when the customer does not exist.")
def create_order():
    """Record an order and credit its customer."""
    return dumped(order_out, controller.create_order(load_body(order_in), current_user), 201)


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
