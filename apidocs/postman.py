"""The Postman v2.1 collection of this API (``flask export-postman``), runnable as it is.

The requests, their bodies, the ids they save and what they assert are the steps of
``apidocs.postman_steps``; the OpenAPI document gives each its summary, auth, documented success
status and response fields. ``newman run`` against a fresh server with ``baseUrl`` and ``apiKey`` set
passes every assertion (``tests/test_contract_tools.py`` runs it).
"""
import json
import re

from apidocs.postman_steps import FOLDERS
from apidocs.spec import TITLE

COLLECTION_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
METHODS = {"get", "post", "put", "patch", "delete"}
_PATH_PARAM = re.compile(r"\{(\w+)\}")
STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 302: "Found",
               401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"}


class UnknownOperation(LookupError):
    """A step names a method and path the OpenAPI document does not have."""


def operations_of(spec):
    """(METHOD, path) -> operation, for every operation of the document."""
    return {(method.upper(), path): op for path, item in spec["paths"].items()
            for method, op in item.items() if method in METHODS}


def _resolve(schema, components):
    while schema and "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema or {}


def documented_success(op):
    """The operation's documented 2xx/3xx status."""
    return next(int(code) for code in op["responses"] if code[0] in "23")


def _response_shape(op, status, components):
    """('object', documented fields, fields always present) or ('array', None, None) of a JSON
    success answer, else None."""
    content = op["responses"].get(str(status), {}).get("content", {})
    if "application/json" not in content:
        return None
    schema = _resolve(content["application/json"].get("schema"), components)
    if schema.get("type") == "array":
        return ("array", None, None)
    if "properties" in schema:
        return ("object", sorted(schema["properties"]), sorted(set(schema.get("required", [])) | (
            {"_id"} & set(schema["properties"]))))
    return None


def _js(value):
    return json.dumps(value)


def _test_script(step, op, components):
    statuses = list(step.status) or [documented_success(op)]
    names = " or ".join(f"{s} {STATUS_TEXT.get(s, '')}".strip() for s in statuses)
    lines = [
        f"pm.test({_js(f'answers {names}')}, function () {{",
        f"    pm.expect(pm.response.code).to.be.oneOf({_js(statuses)});",
        "});",
        'const isJson = (pm.response.headers.get("Content-Type") || "").includes("application/json");',
        "const body = isJson ? pm.response.json() : null;",
    ]
    for status in statuses:
        shape = _response_shape(op, status, components)
        if shape is None:
            continue
        kind, fields, present = shape
        lines += [f"if (pm.response.code === {status}) {{",
                  f"    pm.test({_js(f'{status}: the documented JSON {kind}')}, function () {{",
                  "        pm.expect(isJson, \"a JSON answer\").to.be.true;"]
        if kind == "array":
            lines.append("        pm.expect(body).to.be.an(\"array\");")
        else:
            lines.append(f"        pm.expect({_js(fields)}, \"every field is documented\")"
                         ".to.include.members(Object.keys(body));")
            if present:
                lines.append(f"        pm.expect(body).to.include.all.keys({_js(present)});")
        lines += ["    });", "}"]
    if any(s >= 400 for s in statuses):
        lines += ["if (pm.response.code >= 400) {",
                  "    pm.test(\"the error is JSON and names the problem\", function () {",
                  "        pm.expect(body.error).to.be.a(\"string\").and.not.empty;",
                  "    });",
                  "}"]
    for name, expression in step.save.items():
        lines += ["if (pm.response.code < 300) {",
                  f"    pm.collectionVariables.set({_js(name)}, {expression});",
                  f"    pm.test({_js(f'saves {name}')}, function () {{",
                  f"        pm.expect(pm.collectionVariables.get({_js(name)})).to.be.a(\"string\").and.not.empty;",
                  "    });",
                  "}"]
    checks = []
    for name, expression in step.checks:
        checks += [f"pm.test({_js(name)}, function () {{",
                   f"    pm.expect({expression}, {_js(name)}).to.be.true;",
                   "});"]
    if not step.until:
        return lines + checks
    # Background work: ask again (the same request, 250 ms later) until it is done, then check.
    return lines + [
        f"const done = {step.until};",
        'const tries = Number(pm.collectionVariables.get("tries") || 0);',
        "if (!done && tries < 40) {",
        '    pm.collectionVariables.set("tries", tries + 1);',
        "    setTimeout(function () {}, 250);",
        "    (pm.execution || postman).setNextRequest(pm.info.requestName);",
        "} else {",
        '    pm.collectionVariables.set("tries", 0);',
        f"    pm.test({_js('done: ' + step.until)}, function () {{ pm.expect(done).to.be.true; }});",
        *("    " + line for line in checks),
        "}"]


def _url(step, op):
    segments = _PATH_PARAM.sub(r":\1", step.path).strip("/").split("/")
    url = {"raw": "{{baseUrl}}/" + "/".join(segments), "host": ["{{baseUrl}}"], "path": segments}
    params = _PATH_PARAM.findall(step.path)
    if params:
        described = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
        url["variable"] = [{"key": name, "value": step.values.get(name, "{{%s}}" % name),
                            "description": described.get(name, {}).get("description", "")}
                           for name in params]
    if step.query:
        url["query"] = [{"key": k, "value": v} for k, v in step.query.items()]
        url["raw"] += "?" + "&".join(f"{k}={v}" for k, v in step.query.items())
    return url


def _item(step, op, components):
    request = {
        "method": step.method,
        "url": _url(step, op),
        "header": [{"key": k, "value": v} for k, v in step.headers.items()],
        "description": op.get("description", op["summary"]),
    }
    if not op.get("security") and not step.send_key:
        request["auth"] = {"type": "noauth"}
    if step.body is not None:
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": json.dumps(step.body, indent=2),
                           "options": {"raw": {"language": "json"}}}
    elif step.form:
        request["body"] = {"mode": "formdata", "formdata": [
            {"key": key, "type": "file", **value} if isinstance(value, dict)
            else {"key": key, "type": "text", "value": value}
            for key, value in step.form]}
    events = [{"listen": "test", "script": {"type": "text/javascript", "exec": _test_script(step, op, components)}}]
    if step.prerequest:
        events.insert(0, {"listen": "prerequest", "script": {"type": "text/javascript", "exec": list(step.prerequest)}})
    item = {"name": step.name or op["summary"], "request": request, "event": events}
    if not step.follow_redirects:
        item["protocolProfileBehavior"] = {"followRedirects": False}
    return item


def _variables(base_url):
    saved = {name for _, steps in FOLDERS for step in steps for name in step.save}
    params = {name for _, steps in FOLDERS for step in steps for name in _PATH_PARAM.findall(step.path)}
    named = [("baseUrl", base_url, "Where the API runs"),
             ("apiKey", "", "An API key (POST /api/api-keys from a signed-in session, flask create-api-key, "
                            "or a development server's printed key)"),
             ("webhookSecret", "", "VENDOR_WEBHOOK_SECRET, to sign the receipts request (optional)"),
             ("run", "", "Set by the first request: makes this run's names and addresses unique")]
    rest = sorted((saved | params) - {name for name, _, _ in named})
    return ([{"key": k, "value": v, "type": "string", "description": d} for k, v, d in named]
            + [{"key": k, "value": "", "type": "string", "description": "Saved by the run"} for k in rest])


def to_postman(spec, base_url="http://localhost:5000"):
    """The collection: a folder per area in run order, collection variables, bearer ``{{apiKey}}``."""
    components = spec.get("components", {}).get("schemas", {})
    operations = operations_of(spec)
    folders = []
    for name, steps in FOLDERS:
        items = []
        for step in steps:
            op = operations.get((step.method, step.path))
            if op is None:
                raise UnknownOperation(f"{step.method} {step.path} is not in the OpenAPI document")
            items.append(_item(step, op, components))
        folders.append({"name": name, "item": items})
    return {
        "info": {
            "name": TITLE,
            "description": spec["info"].get("description", "") + (
                " Run it in order (Postman's runner or `newman run`): each request saves the ids the next "
                "ones use and asserts what the API documents; only baseUrl and apiKey need setting."),
            "schema": COLLECTION_SCHEMA,
        },
        "item": folders,
        "variable": _variables(base_url),
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
    }
