"""``/api/orders``: record and read orders."""
from flask import Blueprint
from flask_login import current_user

from controllers import orders as controller
from routes.endpoint import endpoint
from schemas.customer import BulkOut
from schemas.order import BulkOrderIn, OrderIn, OrderOut, OrderPage, OrderQuery

bp = Blueprint("orders", __name__)
bulk_order_in = BulkOrderIn()


@bp.post("")
@endpoint(body=OrderIn, response=OrderOut, status=201, errors=(404, 409), idempotent=True,
          also_status=((200, "Recorded before under this externalId (same customer and amount): that order, "
                             "counted once"),),
          description="`customer` is accepted in place of `customerId`. 404 when the customer does not exist. "
                      "With an `externalId` already recorded for the same customer and amount: 200 with that "
                      "order (not counted again); for another customer or amount: 409.")
def create_order(body):
    """Record an order and credit its customer."""
    order, created = controller.create_order(body, current_user)
    return order, 201 if created else 200


@bp.post("/bulk")
@endpoint(body=BulkOrderIn, body_many=controller.MAX_BULK_ITEMS, response=BulkOut, idempotent=True,
          description="A JSON array of up to 10,000 orders, each checked like POST /orders, the customer named by "
                      "`customerId` or `customerEmail`. An order whose "
                      "`externalId` is already recorded is skipped (same customer and amount) or failed "
                      "(otherwise); each customer's totals are credited once with what was written. One "
                      "entry per item: `index`, `status` (created, skipped, failed), `id` or `errors`. Counts "
                      "against the write rate limit as one request per 1,000 items.")
def bulk_orders(items):
    """Record many orders at once."""
    return controller.bulk_orders(items, bulk_order_in, current_user)


@bp.get("")
@endpoint(query=OrderQuery, response=OrderPage)
def list_orders(query):
    """List orders, newest first, filtered by customer and date range."""
    return controller.list_orders(query)


@bp.get("/<id:order_id>")
@endpoint(response=OrderOut)
def get_order(order_id):
    """Read one order."""
    return controller.get_order(order_id)
