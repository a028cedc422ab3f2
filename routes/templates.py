"""``/api/templates``: reusable message content a campaign can start from."""
from flask import Blueprint
from flask_login import current_user

from controllers import templates as controller
from routes.endpoint import endpoint
from schemas.template import TemplateIn, TemplateOut, TemplatePage, TemplatePatch, TemplateQuery

bp = Blueprint("templates", __name__)


@bp.post("")
@endpoint(body=TemplateIn, response=TemplateOut, status=201, errors=(409,), idempotent=True,
          description="The text body is derived from the HTML when not given. 409 when the name is taken.")
def create_template(body):
    """Save a template."""
    return controller.create_template(body, current_user)


@bp.get("")
@endpoint(query=TemplateQuery, response=TemplatePage)
def list_templates(query):
    """List templates, newest first."""
    return controller.list_templates(query)


@bp.get("/<template_id>")
@endpoint(response=TemplateOut)
def get_template(template_id):
    """Read a template."""
    return controller.get_template(template_id)


@bp.patch("/<template_id>")
@endpoint(body=TemplatePatch, response=TemplateOut, errors=(409,),
          description="Campaigns made from the template keep the content they copied.")
def update_template(template_id, body):
    """Change a template."""
    return controller.update_template(template_id, body)


@bp.delete("/<template_id>")
@endpoint(status=204, description="Campaigns made from it keep their copy.")
def delete_template(template_id):
    """Delete a template."""
    controller.delete_template(template_id)
