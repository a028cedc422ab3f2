"""Turn the OpenAPI document into a Postman v2.1 collection (``flask export-postman``)."""
import json
import re

from apidocs.spec import LEGACY_TAG, TITLE

COLLECTION_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
_PATH_PARAM = re.compile(r"\{(\w+)\}")


def _example(schema, components, depth=0):
    """A small example value for a JSON Schema (following $refs), for request bodies."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return _example(schema["oneOf"][0], components, depth)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 4:
            return {}
        props = schema.get("properties", {})
        required = schema.get("required") or list(props)
        return {k: _example(props[k], components, depth + 1) for k in required if k in props}
    if kind == "array":
        return [_example(schema.get("items", {}), components, depth + 1)]
    if kind in ("number", "integer"):
        return schema.get("minimum", 1) if kind == "integer" else 1.5
    if kind == "boolean":
        return True
    if schema.get("format") == "email":
        return "ada@example.com"
    if schema.get("format") == "date-time":
        return "2024-05-01T10:00:00Z"
    if schema.get("pattern") == "^[0-9a-fA-F]{24}$":
        return "64b7f0000000000000000000"
    return "text"


def _request(path, method, operation, components):
    postman_path = _PATH_PARAM.sub(r":\1", path).strip("/").split("/")
    url = {
        "raw": "{{baseUrl}}/" + "/".join(postman_path),
        "host": ["{{baseUrl}}"],
        "path": postman_path,
    }
    variables = [p for p in operation.get("parameters", []) if p["in"] == "path"]
    if variables:
        url["variable"] = [{"key": p["name"], "value": "", "description": "24-hex id"} for p in variables]
    query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    if query:
        url["query"] = [
            {"key": p["name"], "value": str(p["schema"].get("default", "")), "disabled": True}
            for p in query
        ]
    request = {"method": method.upper(), "url": url, "header": [], "description": operation.get("description", "")}
    if not operation.get("security"):
        request["auth"] = {"type": "noauth"}
    body = operation.get("requestBody")
    form = body and body["content"].get("multipart/form-data")
    if form:
        request["body"] = {"mode": "formdata", "formdata": [
            {"key": name, "type": "file" if field.get("format") == "binary" else "text",
             **({} if field.get("format") == "binary" else {"value": str(field.get("enum", [""])[0])})}
            for name, field in form["schema"]["properties"].items()]}
    elif body:
        schema = body["content"]["application/json"]["schema"]
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(_example(schema, components), indent=2),
            "options": {"raw": {"language": "json"}},
        }
    return {"name": operation["summary"], "request": request}


def to_postman(spec, base_url="http://localhost:5000", include_aliases=False):
    """A Postman v2.1 collection: a folder per tag, ``baseUrl`` variable, bearer API-key auth."""
    components = spec.get("components", {}).get("schemas", {})
    folders = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            tag = operation["tags"][0]
            if tag == LEGACY_TAG and not include_aliases:
                continue
            folders.setdefault(tag, []).append(_request(path, method, operation, components))
    return {
        "info": {
            "name": TITLE,
            "description": spec["info"].get("description", ""),
            "schema": COLLECTION_SCHEMA,
        },
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
        "variable": [
            {"key": "baseUrl", "value": base_url, "type": "string"},
            {"key": "apiKey", "value": "", "type": "string"},
        ],
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
    }
