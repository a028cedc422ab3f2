"""``/api/attributes``: declared custom attributes customers carry under ``attributes``."""
from flask import Blueprint
from flask_login import current_user

from controllers import attributes as controller
from routes.endpoint import endpoint
from schemas.attribute import AttributeIn, AttributeOut, AttributePage, AttributePatch, AttributeQuery

bp = Blueprint("attributes", __name__)


@bp.post("")
@endpoint(body=AttributeIn, response=AttributeOut, status=201, errors=(409,), idempotent=True,
          description="Customers may then carry it (`attributes.<key>`), rules may use it as the field "
                      "`attributes.<key>`, messages as `{{ attributes.<key> }}`, imports and exports as the "
                      "column `attributes.<key>`. 409 when the key is declared already or 100 are.")
def create_attribute(body):
    """Declare a custom attribute."""
    return controller.create_attribute(body, current_user)


@bp.get("")
@endpoint(query=AttributeQuery, response=AttributePage)
def list_attributes(query):
    """List the declared attributes, by key."""
    return controller.list_attributes(query)


@bp.get("/<key>")
@endpoint(response=AttributeOut)
def get_attribute(key):
    """Read a declared attribute."""
    return controller.get_attribute(key)


@bp.patch("/<key>")
@endpoint(body=AttributePatch, response=AttributeOut,
          description="Only the description changes: a declared type is fixed (stored values would stop fitting).")
def update_attribute(key, body):
    """Describe a declared attribute."""
    return controller.update_attribute(key, body)


@bp.delete("/<key>")
@endpoint(status=204, errors=(409,), description=(
    "Removes the definition and every customer's value of it. 409 (naming them) while a segment or an "
    "unfinished campaign has a rule on it."))
def delete_attribute(key):
    """Delete a declared attribute and its values."""
    controller.delete_attribute(key)
