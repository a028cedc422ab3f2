"""``/api/customers``: create, list, read, update, delete customers."""
from flask import Blueprint, Response, stream_with_context
from flask_login import current_user
from marshmallow import ValidationError

from controllers import customers as controller
from controllers import events as events_controller
from controllers import export
from errors import ApiError
from models.roles import ADMIN, at_least
from routes.endpoint import endpoint
from schemas.common import NormalizedEmail
from schemas.event import TimelinePage, TimelineQuery
from schemas.customer import (
    BulkOut,
    CustomerDeleteQuery,
    CustomerExportOut,
    CustomerExportQuery,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    CustomerQuery,
    CustomerUpsert,
    UpsertQuery,
)
from security import audit
from security.policy import effective_role

bp = Blueprint("customers", __name__)
customer_in, path_email = CustomerIn(), NormalizedEmail()


@bp.post("")
@endpoint(body=CustomerIn, response=CustomerOut, status=201, errors=(409,), idempotent=True)
def create_customer(body):
    """Create a customer (409 if the email is taken)."""
    return controller.create_customer(body, current_user)


@bp.get("")
@endpoint(query=CustomerQuery, response=CustomerPage)
def list_customers(query):
    """List customers with filters, sorting and pagination (a search by email or name is audited)."""
    page = controller.list_customers(query)
    searched = {name: query[name] for name in ("email", "q") if name in query}
    if searched:
        audit.record_current("customer.search", "customer", details=searched)
    return page


@bp.put("/by-email/<email>")
@endpoint(body=CustomerUpsert, query=UpsertQuery, response=CustomerOut, status=200, errors=(404,),
          also_status=((201, "Created: no customer had this email"),),
          description="Creates (201) or updates (200) the customer with this email. `mode=merge` (default): "
                      "the fields given replace, tags are added; `mode=replace`: tags are replaced too (by "
                      "none when not given). Totals are never written by a client. Creating needs a name.")
def upsert_customer(email, query, body):
    """Create or update a customer by email."""
    try:
        email = path_email.deserialize(email)
    except ValidationError as exc:
        raise ApiError.validation({"email": exc.messages}, "Invalid email in the path") from exc
    customer, created = controller.upsert_customer(email, body, query["mode"], current_user)
    return customer, 201 if created else 200


@bp.post("/bulk")
@endpoint(body=CustomerIn, body_many=controller.MAX_BULK_ITEMS, query=UpsertQuery, response=BulkOut,
          idempotent=True,
          description="A JSON array of up to 10,000 customers, each checked like POST /customers and "
                      "upserted by email (`mode` as in PUT /customers/by-email). The answer has one entry "
                      "per item: `index`, `status` (created, updated, unchanged: nothing to change, skipped, failed), `id` or `errors`. "
                      "An email twice in the array: the later item wins, the earlier is skipped. Counts "
                      "against the write rate limit as one request per 1,000 items.")
def bulk_customers(query, items):
    """Create or update many customers at once."""
    return controller.bulk_customers(items, customer_in, query["mode"], current_user)


@bp.get("/export.csv")
@endpoint(query=CustomerExportQuery, content_type="text/csv", errors=(404,),
          description="Streams every matching customer as CSV (the list's filters, or a saved segment's "
                      "audience with `segmentId`), never built whole in memory. Cells a spreadsheet would "
                      "run as a formula (starting with =, +, -, @, tab or CR) are prefixed with '. Audited.")
def download_csv(query):
    """Export customers as CSV."""
    rows = export.customer_rows(query)
    audit.record_current("customer.export_csv", "customer", details={
        name: query[name] for name in ("email", "q", "subscribed", "segment_id") if name in query})
    response = Response(stream_with_context(rows), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="customers.csv"'
    return response


@bp.get("/<id:customer_id>")
@endpoint(response=CustomerOut)
def get_customer(customer_id):
    """Read one customer."""
    return controller.get_customer(customer_id)


@bp.patch("/<id:customer_id>")
@endpoint(body=CustomerPatch, response=CustomerOut, errors=(409,))
def update_customer(customer_id, body):
    """Change a customer's name and/or email."""
    return controller.update_customer(customer_id, body)


@bp.get("/<id:customer_id>/timeline")
@endpoint(query=TimelineQuery, response=TimelinePage, description=(
    "Everything that happened with the customer, newest first: `order`, `message` (at its hand-off, or "
    "its planning when not sent yet), `open`, `click` (with `suspectedBot`) and `event` (the track API's), "
    "each with `type` and `at`. `types` keeps some; `page` is at most 100."))
def customer_timeline(customer_id, query):
    """A customer's timeline."""
    return events_controller.timeline(customer_id, query)


@bp.get("/<id:customer_id>/export")
@endpoint(response=CustomerExportOut,
          description="Admin only, audited: everything stored about the customer (a data subject's "
                      "access request), as JSON.")
def export_customer(customer_id):
    """Export everything stored about one customer."""
    return controller.export_customer(customer_id)


@bp.delete("/<id:customer_id>")
@endpoint(query=CustomerDeleteQuery, status=204, errors=(403,),
          description="Their orders are deleted with them. With `erase=true` (admin only, audited as "
                      "`customer.erase`) their delivery records are anonymised too: no address, no message.")
def delete_customer(customer_id, query):
    """Delete a customer and their orders (``erase=true``: and anonymise their deliveries)."""
    if not query["erase"]:
        controller.delete_customer(customer_id)
        return None
    if not at_least(effective_role(), ADMIN):
        raise ApiError(403, "Erasing a customer requires the admin role")
    controller.erase_customer(customer_id)
    audit.record_current("customer.erase", "customer", target_id=customer_id)
    return None
