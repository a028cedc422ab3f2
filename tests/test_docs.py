"""The API's self-description: OpenAPI document, Swagger UI, Postman export."""
import json
import re

import pytest
from openapi_spec_validator import validate

from apidocs import UndocumentedRoute, build_spec
from apidocs.postman import COLLECTION_SCHEMA
from apidocs.spec import LEGACY_TAG

METHODS = {"get", "post", "put", "patch", "delete"}


def url_map_operations(app):
    """(OpenAPI path, method) for every URL rule of the app."""
    ops = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        path = path.rstrip("/") or "/"  # trailing slashes are optional everywhere: documented without
        ops |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    return ops


def spec_operations(spec):
    return {(path, m) for path, item in spec["paths"].items() for m in item if m in METHODS}


def test_spec_is_served_and_valid(anon):
    response = anon.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["servers"] == [{"url": "/"}]


def test_spec_lists_every_route_and_nothing_else(app, anon):
    spec = anon.get("/api/openapi.json").get_json()
    assert spec_operations(spec) == url_map_operations(app)


def test_every_operation_is_described(anon):
    spec = anon.get("/api/openapi.json").get_json()
    seen_ids = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op["summary"], (path, method)
            assert op["operationId"] not in seen_ids
            seen_ids.add(op["operationId"])
            assert op["tags"]
            codes = set(op["responses"])
            assert any(code.startswith(("2", "3")) for code in codes), (path, method)
            if op["security"]:
                assert "401" in codes
            if "requestBody" in op:
                assert {"400", "413", "415"} <= codes
            if "{" in path and "{path}" not in path:
                assert "404" in codes


def test_security_scheme_and_protected_operations(anon):
    spec = anon.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["cookieAuth"] == {
        "type": "apiKey", "in": "cookie", "name": "session",
        "description": "The session cookie set by Google sign-in",
    }
    create = spec["paths"]["/api/customers"]["post"]
    assert create["security"] == [{"cookieAuth": []}, {"bearerAuth": []}, {"apiKeyHeader": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/auth/status"]["get"]["security"] == []
    assert spec["paths"]["/healthz"]["get"]["security"] == []


def test_request_and_response_schemas_come_from_marshmallow(anon):
    spec = anon.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    customer_in = schemas["CustomerIn"]
    assert customer_in["required"] == ["email", "name"]
    assert customer_in["additionalProperties"] is False
    assert customer_in["properties"]["name"]["maxLength"] == 200
    order_in = schemas["OrderIn"]["properties"]
    assert order_in["amount"] == {
        "type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1e9,
    }
    assert order_in["customerId"]["pattern"] == "^[0-9a-fA-F]{24}$"
    assert schemas["CustomerOut"]["properties"]["lastVisitDate"] == {
        "type": "string", "format": "date-time", "nullable": True,
    }
    listing = spec["paths"]["/api/campaigns"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"]["type"] == "array"
    assert "X-Total-Count" in listing["headers"]
    params = {p["name"]: p for p in spec["paths"]["/api/customers"]["get"]["parameters"]}
    assert set(params) == {"page", "perPage", "email", "q", "subscribed", "sort"}  # camelCase, like the bodies
    assert "`per_page` is accepted too" in params["perPage"]["description"]
    page = schemas["CustomerPage"]["properties"]
    assert page["perPage"]["type"] == "integer" and page["per_page"]["deprecated"] is True


def test_undocumented_route_is_refused(make_app):
    app = make_app()

    @app.get("/api/secret-new-thing")
    def secret_new_thing():
        return "x"

    with pytest.raises(UndocumentedRoute, match="secret-new-thing"):
        build_spec(app)


def test_swagger_ui_is_served_from_local_assets(anon):
    page = anon.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/api/openapi.json" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/api/docs/") for s in sources), sources
    for source in sources:
        assert anon.get(source).status_code == 200, source
    assert anon.get("/api/docs/").status_code == 200
    assert anon.get("/api/docs/no-such-file.js").status_code == 404


def test_postman_export(app):
    result = app.test_cli_runner().invoke(args=["export-postman", "--base-url", "https://crm.example.com"])
    assert result.exit_code == 0, result.output
    collection = json.loads(result.stdout)
    assert collection["info"]["schema"] == COLLECTION_SCHEMA
    assert {"key": "baseUrl", "value": "https://crm.example.com", "type": "string"} in collection["variable"]
    assert collection["auth"]["type"] == "bearer"
    assert collection["auth"]["bearer"][0]["value"] == "{{apiKey}}"
    requests = {
        (item["request"]["method"], item["request"]["url"]["raw"]): item
        for folder in collection["item"] for item in folder["item"]
    }
    spec = build_spec(app)
    api_ops = {(m, p) for p, item in spec["paths"].items() for m, op in item.items()
               if op["tags"] != [LEGACY_TAG]}
    assert len(requests) == len(api_ops)
    create = requests[("POST", "{{baseUrl}}/api/customers")]["request"]
    assert json.loads(create["body"]["raw"]) == {"email": "ada@example.com", "name": "text"}
    assert {"key": "Content-Type", "value": "application/json"} in create["header"]
    one = requests[("GET", "{{baseUrl}}/api/customers/:customer_id")]["request"]
    assert one["url"]["variable"][0]["key"] == "customer_id"
    status = requests[("GET", "{{baseUrl}}/api/auth/status")]["request"]
    assert status["auth"] == {"type": "noauth"}
    assert {f["name"] for f in collection["item"]} >= {"Auth", "Customers", "Orders", "Campaigns", "Health"}


def test_the_document_passes_redocly_lint_with_the_recommended_rules(app, tmp_path):
    """What `npx @redocly/cli lint` says of the served document (recommended rules, the CLI pinned in
    package-lock.json): no error and no warning but the few apidocs/redocly-lint-ignore.yaml explains."""
    import shutil
    import subprocess

    from tests.processes import ROOT

    redocly = ROOT / "node_modules" / ".bin" / "redocly"
    assert redocly.exists(), "run scripts/setup-node.sh (scripts/test.sh does)"
    (tmp_path / "openapi.json").write_text(app.test_client().get("/api/openapi.json").get_data(as_text=True))
    shutil.copy(ROOT / "apidocs" / "redocly-lint-ignore.yaml", tmp_path / ".redocly.lint-ignore.yaml")
    result = subprocess.run([str(redocly), "lint", "openapi.json", "--format=stylish"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Your API description is valid" in output and "warning" not in output.split("validating")[-1], output
