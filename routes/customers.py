"""``/api/customers``: create, list, read, update, delete customers."""
from flask import Blueprint
from flask_login import current_user

from apidocs import doc
from controllers import customers as controller
from errors import ApiError
from routes.helpers import dumped, dumped_page, load_body, load_query
from schemas.customer import (
    CustomerDeleteQuery,
    CustomerExportOut,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    CustomerQuery,
)
from security import audit
from security.policy import effective_role
from models.roles import ADMIN, at_least

bp = Blueprint("customers", __name__)

customer_in, customer_query = CustomerIn(), CustomerQuery()
customer_patch = CustomerPatch()
customer_out = CustomerOut()
customer_delete_query, customer_export_out = CustomerDeleteQuery(), CustomerExportOut()


@bp.post("")
@doc(body=CustomerIn, response=CustomerOut, status=201, errors=(409,))
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
