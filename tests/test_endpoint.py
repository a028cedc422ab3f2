"""``@endpoint``: what a route declares is what it loads, dumps and documents."""
import pytest
from flask import Blueprint, Flask, Response
from marshmallow import fields, validate

from apidocs.operation import operation_of
from errors import register_error_handlers
from routes.endpoint import endpoint
from schemas.common import ApiSchema, InputSchema, PageQuery, page_of


class ThingIn(InputSchema):
    display_name = fields.String(required=True, validate=validate.Length(min=1))


class ThingOut(ApiSchema):
    display_name = fields.String()
    created_by = fields.String()


class Thing:
    """What a controller hands back: more than the API shows."""

    def __init__(self, display_name):
        self.display_name = display_name
        self.created_by = "ops"
        self.password_hash = "never shown"


@pytest.fixture()
def client():
    app = Flask(__name__)
    register_error_handlers(app)
    bp = Blueprint("things", __name__)

    @bp.post("/things")
    @endpoint(body=ThingIn, response=ThingOut, status=201)
    def create(body):
        return Thing(body["display_name"])

    @bp.get("/things")
    @endpoint(query=PageQuery, response=page_of(ThingOut, "ThingPage"))
    def listing(query):
        items = [Thing(f"t{i}") for i in range(query["per_page"])]
        return {"items": items, "total": 99, "page": query["page"], "per_page": query["per_page"]}

    @bp.put("/things/<name>")
    @endpoint(response=ThingOut)
    def upsert(name):
        return Thing(name), 201 if name == "new" else 200, {"X-Thing": name}

    @bp.delete("/things/<name>")
    @endpoint(status=204)
    def delete(name):
        return None

    @bp.get("/things.csv")
    @endpoint(content_type="text/csv")
    def csv():
        return Response("a,b\n", content_type="text/csv")

    app.register_blueprint(bp)
    return app.test_client()


def test_the_body_is_loaded_and_the_answer_dumped_through_the_schemas(client):
    response = client.post("/things", json={"displayName": "Lamp"})
    assert response.status_code == 201
    assert response.get_json() == {"displayName": "Lamp", "createdBy": "ops"}  # nothing undeclared leaks


@pytest.mark.parametrize("body, field", [({}, "displayName"), ({"displayName": ""}, "displayName"),
                                         ({"displayName": "x", "role": "admin"}, "role")])
def test_a_body_the_schema_refuses_is_a_400_naming_the_field(client, body, field):
    response = client.post("/things", json=body)
    assert response.status_code == 400 and field in response.get_json()["errors"]


def test_the_query_is_loaded_and_a_page_dumped_in_camel_case(client):
    body = client.get("/things?perPage=2").get_json()
    assert body == {"items": [{"displayName": "t0", "createdBy": "ops"}, {"displayName": "t1", "createdBy": "ops"}],
                    "total": 99, "page": 1, "perPage": 2, "per_page": 2}
    assert client.get("/things?per_page=101").get_json()["errors"] == {
        "per_page": ["Must be greater than or equal to 1 and less than or equal to 100."]}


def test_a_view_chooses_status_and_headers_and_a_204_has_no_body(client):
    created = client.put("/things/new")
    assert created.status_code == 201 and created.headers["X-Thing"] == "new"
    assert client.put("/things/old").status_code == 200
    deleted = client.delete("/things/x")
    assert deleted.status_code == 204 and deleted.data == b""


def test_a_response_the_view_built_passes_as_it_is(client):
    response = client.get("/things.csv")
    assert response.status_code == 200 and response.data == b"a,b\n" and response.mimetype == "text/csv"


def test_every_route_loads_and_dumps_through_endpoint(make_app):
    app = make_app()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint == "static" or rule.endpoint.startswith("swagger_ui."):  # files, not API answers
            continue
        assert getattr(view, "__endpoint__", False), f"{rule.rule} ({rule.endpoint}) does not use @endpoint"
        assert operation_of(view) is not None
