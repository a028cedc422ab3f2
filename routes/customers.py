"""``/api/customers``: create, list, read, update, delete customers."""
from flask import Blueprint, Response, stream_with_context
from flask_login import current_user
from marshmallow import ValidationError

from apidocs import doc
from controllers import customers as controller
from controllers import export
from controllers.idempotency import idempotent
from errors import ApiError
from routes.helpers import dumped, dumped_page, json_items, load_body, load_query
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
from schemas.common import NormalizedEmail
from security import audit
from security.policy import effective_role
from models.roles import ADMIN, at_least

bp = Blueprint("customers", __name__)

customer_in, customer_query = CustomerIn(), CustomerQuery()
customer_patch = CustomerPatch()
customer_out = CustomerOut()
customer_delete_query, customer_export_out = CustomerDeleteQuery(), CustomerExportOut()
customer_upsert, upsert_query, export_query = CustomerUpsert(), UpsertQuery(), CustomerExportQuery()
path_email, bulk_out = NormalizedEmail(), BulkOut()


@bp.post("")
@doc(body=CustomerIn, response=CustomerOut, status=201, errors=(409,), idempotent=True)
@idempotent
def create_customer():
    """Create a customer (409 if the email is taken)."""
    return dumped(customer_out, controller.create_customer(load_body(customer_in), current_user), 201)


@bp.get("")
@doc(query=CustomerQuery, response=CustomerPage)
def list_customers():
    """List customers with filters, sorting and pagination (a search by email or name is audited)."""
    query = load_query(customer_query)
    page = controller.list_customers(query)
    searched = {name: query[name] for name in ("email", "q") if name in query}
    if searched:
        audit.record_current("customer.search", "customer", details=searched)
    return dumped_page(customer_out, page)


@bp.put("/by-email/<email>")
@doc(body=CustomerUpsert, query=UpsertQuery, response=CustomerOut, status=200,
     description="Creates (201) or updates (200) the customer with this email. `mode=merge` (default): "
                 "the fields given replace, tags are added; `mode=replace`: tags are replaced too (by "
                 "none when not given). Totals are never written by a client. Creating needs a name.")
def upsert_customer(email):
    """Create or update a customer by email."""
    try:
        email = path_email.deserialize(email)
    except ValidationError as exc:
        raise ApiError.validation({"email": exc.messages}, "Invalid email in the path") from exc
    mode = load_query(upsert_query)["mode"]
    customer, created = controller.upsert_customer(email, load_body(customer_upsert), mode, current_user)
    return dumped(customer_out, customer, 201 if created else 200)


@bp.post("/bulk")
@doc(body=CustomerIn, body_many=True, query=UpsertQuery, response=BulkOut, idempotent=True,
     description="A JSON array of up to 10,000 customers, each checked like POST /customers and "
                 "upserted by email (`mode` as in PUT /customers/by-email). The answer has one entry "
                 "per item: `index`, `status` (created, updated, skipped, failed), `id` or `errors`. "
                 "An email twice in the array: the later item wins, the earlier is skipped. Counts "
                 "against the write rate limit as one request per 100 items.")
@idempotent
def bulk_customers():
    """Create or update many customers at once."""
    mode = load_query(upsert_query)["mode"]
    raw = json_items(controller.MAX_BULK_ITEMS)
    return dumped(bulk_out, controller.bulk_customers(raw, customer_in, mode, current_user))


@bp.get("/export.csv")
@doc(query=CustomerExportQuery, content_type="text/csv", errors=(404,),
     description="Streams every matching customer as CSV (the list's filters, or a saved segment's "
                 "audience with `segmentId`), never built whole in memory. Cells a spreadsheet would run "
                 "as a formula (starting with =, +, -, @, tab or CR) are prefixed with '. Audited.")
def download_csv():
    """Export customers as CSV."""
    query = load_query(export_query)
    rows = export.customer_rows(query)
    audit.record_current("customer.export_csv", "customer", details={
        name: query[name] for name in ("email", "q", "subscribed", "segment_id") if name in query})
    response = Response(stream_with_context(rows), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = 'attachment; filename="customers.csv"'
    return response


@bp.get("/<customer_id>")
@doc(response=CustomerOut)
def get_customer(customer_id):
    """Read one customer."""
    return dumped(customer_out, controller.get_customer(customer_id))


@bp.patch("/<customer_id>")
@doc(body=CustomerPatch, response=CustomerOut, errors=(409,))
def update_customer(customer_id):
    """Change a customer's name and/or email."""
    return dumped(customer_out, controller.update_customer(customer_id, load_body(customer_patch)))


@bp.get("/<customer_id>/export")
@doc(response=CustomerExportOut,
     description="Admin only, audited: everything stored about the customer (a data subject's "
                 "access request), as JSON.")
def export_customer(customer_id):
    """Export everything stored about one customer."""
    return dumped(customer_export_out, controller.export_customer(customer_id))


@bp.delete("/<customer_id>")
@doc(query=CustomerDeleteQuery, status=204, errors=(403,),
     description="Their orders are deleted with them. With `erase=true` (admin only, audited as "
                 "`customer.erase`) their delivery records are anonymised too: no address, no message.")
def delete_customer(customer_id):
    """Delete a customer and their orders (``erase=true``: and anonymise their deliveries)."""
    if not load_query(customer_delete_query)["erase"]:
        controller.delete_customer(customer_id)
        return "", 204
    if not at_least(effective_role(), ADMIN):
        raise ApiError(403, "Erasing a customer requires the admin role")
    controller.erase_customer(customer_id)
    audit.record_current("customer.erase", "customer", target_id=customer_id)
    return "", 204
