"""``/api/openapi.json`` and Swagger UI at ``/api/docs`` (assets from the flask-swagger-ui package)."""
from flask import Blueprint
from flask_swagger_ui import get_swaggerui_blueprint

from apidocs import doc
from apidocs.spec import current_spec
from routes.endpoint import endpoint

SPEC_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"

bp = Blueprint("docs", __name__)


@bp.get(SPEC_URL)
@endpoint(public=True, response={"type": "object"}, description="This document.")
def openapi_json():
    """The OpenAPI 3 description of this API (a JSON Schema of its own, not a marshmallow schema)."""
    return current_spec()


def init_app(app):
    """Register the spec route and Swagger UI (served offline from the package's bundled files)."""
    app.register_blueprint(bp)
    swagger = get_swaggerui_blueprint(
        DOCS_URL,
        SPEC_URL,
        config={"app_name": "CRM API", "persistAuthorization": True, "displayRequestDuration": True},
    )
    app.register_blueprint(swagger)
    # The page without its slash, as a rule of its own: matched only through the optional slash, any
    # other method would be a 404 rather than a 405 with Allow.
    app.add_url_rule(DOCS_URL, endpoint="swagger_ui.show", methods=["GET"])
    doc(
        public=True,
        content_type="text/html",
        response={"type": "string"},
        description="`/api/docs` is the page; other paths are its scripts and styles.",
    )(app.view_functions["swagger_ui.show"])
