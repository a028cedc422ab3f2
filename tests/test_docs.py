"""The API's self-description: OpenAPI document, Swagger UI, Postman export."""
import json
import re

import pytest
from openapi_spec_validator import validate

from apidocs import UndocumentedRoute, build_spec
from apidocs.postman import COLLECTION_SCHEMA
from apidocs.postman_steps import FOLDERS, NOT_IN_COLLECTION
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
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["baseUrl"] == "https://crm.example.com" and variables["apiKey"] == ""
    assert collection["auth"]["type"] == "bearer"
    assert collection["auth"]["bearer"][0]["value"] == "{{apiKey}}"
    items = [item for folder in collection["item"] for item in folder["item"]]
    requests = {(item["request"]["method"], item["request"]["url"]["raw"].split("?")[0]): item for item in items}
    # Every operation of the document (aliases apart) is in the collection, or listed as left out.
    spec = build_spec(app)
    api_ops = {(m.upper(), p) for p, item in spec["paths"].items() for m, op in item.items()
               if op["tags"] != [LEGACY_TAG]}
    covered = {(step.method, step.path) for _, steps in FOLDERS for step in steps}
    assert api_ops == covered | set(NOT_IN_COLLECTION)
    # Path parameters are variables with values, never a literal ":id" left to fill in.
    for item in items:
        for variable in item["request"]["url"].get("variable", []):
            assert variable["value"].startswith("{{") or variable["value"], item["name"]
            if variable["value"].startswith("{{"):
                assert variable["value"].strip("{}") in variables, item["name"]
    one = requests[("GET", "{{baseUrl}}/api/customers/:customer_id")]["request"]
    assert one["url"]["variable"][0] == {"key": "customer_id", "value": "{{customer_id}}", "description": ""}
    # Ids are saved by the requests that create them, before any request uses them.
    saved = set()
    for item in items:
        for variable in item["request"]["url"].get("variable", []):
            name = variable["value"].strip("{}")
            assert not variable["value"].startswith("{{") or name in saved, (item["name"], name)
        script = "\n".join(line for event in item["event"] for line in event["script"]["exec"])
        saved |= set(re.findall(r'pm\.collectionVariables\.set\("(\w+)"', script))
        assert "pm.test(" in script and "pm.expect(" in script, item["name"]
    create = requests[("POST", "{{baseUrl}}/api/customers")]["request"]
    assert json.loads(create["body"]["raw"])["email"] == "ada.{{run}}@example.com"
    assert {"key": "Content-Type", "value": "application/json"} in create["header"]
    status = requests[("GET", "{{baseUrl}}/healthz")]["request"]
    assert status["auth"] == {"type": "noauth"}
    assert [f["name"] for f in collection["item"]][-1] == "Clean up"  # deletes last
    assert all(item["request"]["method"] != "DELETE" for folder in collection["item"][:-1]
               for item in folder["item"])


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


# --- what the document states (issue 24 item 8): what it calls valid is accepted, or it says why not ---
def _schema(spec, name):
    return spec["components"]["schemas"][name]


def test_patch_bodies_need_one_field_and_say_so(anon):
    spec = anon.get("/api/openapi.json").get_json()
    for name, fields in [("CustomerPatch", {"name", "email", "tags", "subscribed", "attributes", "timezone",
                                            "locale"}), ("SegmentPatch", {"name", "rules"}),
                         ("UserPatch", {"role", "disabled"}), ("VariantIn", {"subject", "html", "text"}),
                         ("TemplatePatch", {"name", "subject", "preheader", "html", "text"})]:
        schema = _schema(spec, name)
        assert schema["minProperties"] == 1, name
        assert {field for choice in schema["anyOf"] for field in choice["required"]} == fields, name


def test_rule_bodies_are_typed_recursively_and_each_alternative_is_accepted(anon, client):
    from jsonschema import Draft4Validator
    spec = anon.get("/api/openapi.json").get_json()
    rules = _schema(spec, "SegmentIn")["properties"]["rules"]
    assert rules["items"] == {"anyOf": [{"$ref": "#/components/schemas/AudienceRule"},
                                        {"$ref": "#/components/schemas/AudienceGroup"}]}
    group = _schema(spec, "AudienceGroup")
    assert group["properties"]["rules"]["items"] == rules["items"] and group["additionalProperties"] is False
    samples = {"number": ["100", 99.5], "date": ["2024-05-01", "2024-05-01T10:00:00Z"], "text": ["vip"]}
    validator = Draft4Validator({"components": spec["components"], **_schema(spec, "AudienceRule")})
    for alternative in _schema(spec, "AudienceRule")["oneOf"]:
        field = alternative["properties"]["field"]["enum"][0]
        for operator in alternative["properties"]["operator"]["enum"]:
            value = _a_value(alternative["properties"]["value"], samples)
            rule = {"field": field, "operator": operator, "value": value}
            assert validator.is_valid(rule), rule
            answer = client.post("/api/segments/preview", json={"rules": [rule]})
            assert answer.status_code == 200, (rule, answer.get_json())


def _a_value(schema, samples):
    """A value the schema allows (for the rule alternatives above)."""
    if "anyOf" in schema:
        return _a_value(schema["anyOf"][0], samples)
    if schema.get("type") == "boolean":
        return True
    if schema.get("type") == "integer":
        return schema["minimum"]
    if schema.get("type") == "number":
        return 100
    if schema.get("type") == "array":
        item = _a_value(schema["items"], samples)
        return [item, item] if schema.get("minItems") == 2 else [item]
    if schema.get("format") == "date":
        return "2024-05-01"
    if schema.get("pattern", "").startswith("^[+-]"):
        return "100"
    return "vip"


def test_constraints_the_server_enforces_are_in_the_document(anon):
    spec = anon.get("/api/openapi.json").get_json()
    paths = spec["paths"]
    create_order = paths["/api/orders"]["post"]["responses"]
    assert {"200", "201"} <= set(create_order)  # a replay by externalId answers 200
    upsert = paths["/api/customers/by-email/{email}"]["put"]
    assert {"200", "201", "404"} <= set(upsert["responses"])
    email = next(p for p in upsert["parameters"] if p["name"] == "email")
    assert email["schema"]["format"] == "email" and upsert["requestBody"]["required"] is False
    key = next(p for p in paths["/api/customers"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == "^[!-~]([ -~]*[!-~])?$"
    for path, item in paths.items():
        for method, operation in item.items():
            assert {"414", "431"} <= set(operation["responses"]), (path, method)  # the server's own limits
    bulk = paths["/api/customers/bulk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert bulk["items"]["anyOf"][0] == {"$ref": "#/components/schemas/CustomerIn"}  # a bad item fails alone
    campaign = _schema(spec, "CampaignIn")
    assert {"oneOf": [{"required": ["rules"]}, {"required": ["segmentId"]}]} in campaign["allOf"]
    assert campaign["properties"]["variants"]["uniqueItems"] is True
    assert campaign["properties"]["attributionDays"]["maximum"] == 90  # ATTRIBUTION_MAX_DAYS, not 365
    assert _schema(spec, "PreviewIn")["oneOf"] == [{"required": ["rules"]}, {"required": ["segmentId"]}]
    assert _schema(spec, "TemplateIn")["properties"]["name"]["pattern"].startswith("^[^\\u0000-\\u001F")
    assert "NUL" in spec["info"]["description"] and "future" in spec["info"]["description"]
    links = paths["/api/customers"]["post"]["responses"]["201"]["links"]
    assert links["get_customer_id"] == {"operationId": "customers.get_customer.get",
                                        "parameters": {"customer_id": "$response.body#/_id"}}


@pytest.mark.parametrize("name, accepted", [
    ("Caf\u00e9\u00a0Cr\u00e8me", True),  # a no-break space is one line
    ("Tab\there", False), ("Line\u2028break", False), ("C1\u0085control", False), ("Bell\u0007", False),
])
def test_single_line_names_refuse_exactly_what_the_document_says(anon, client, name, accepted):
    spec = anon.get("/api/openapi.json").get_json()
    pattern = _schema(spec, "TemplateIn")["properties"]["name"]["pattern"]
    assert (re.search(pattern, name) is not None) is accepted
    answer = client.post("/api/templates", json={"name": name, "subject": "Hi", "text": "Hello"})
    assert (answer.status_code == 201) is accepted, answer.get_json()
