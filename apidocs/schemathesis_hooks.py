"""schemathesis hooks: keep generated requests within what the document says in words.

JSON Schema cannot relate a value to the clock or to another value, so the document states these in
descriptions: ``scheduledAt`` and an API key's ``expiresAt`` in the future, an order's ``date`` at
most a day ahead, ``to`` after ``from`` (reports, orders), a by-email body's address equal to the
path's, an event's ``at`` at most a day ahead, a ``between`` pair low to high, an import file whose
header fits its type (and a mapping naming its columns), a customer's ``attributes`` naming declared
attributes only (the run declares none: they are left out), a ``timezone`` the zone database has,
event property keys that are not empty, start with no ``$`` and hold no dot, a flow whose segment,
template and branch targets exist, waits within a year and content with known placeholders (see
``_keep_flow``). Before each call of a request
drawn to be valid, a value that breaks one of them is replaced by one that keeps it (a valid value
by another valid value). Requests drawn to be invalid are sent as drawn.
"""
import zoneinfo
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import schemathesis
from hypothesis import strategies as st

FUTURE_ONLY = ("scheduledAt", "expiresAt")
_ZONES = {name.lower() for name in zoneinfo.available_timezones()}
CSV_FILES = ["email,name\nfuzz@example.com,Fuzz\n", "name;email\r\nAda;ada@example.com\r\n",
             "\ufeffemail,name,tags\nzoe@example.com,Zo\u00eb,a|b\n"]  # text: a file part is a string
CSV_BY_TYPE = {"customers": CSV_FILES[0], "orders": "externalId,customerEmail,amount\nfuzz-1,fuzz@example.com,5\n",
               "suppressions": "email\nfuzz@example.com\n"}


# The import file part is text/csv (the document's encoding): UTF-8 CSV files, never random bytes.
schemathesis.openapi.media_type("text/csv", st.sampled_from(CSV_FILES))


def _instant(value):
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment):
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _order_between_pairs(node):
    """``between`` values low to high (the fuzzer's pairs come in any order)."""
    if isinstance(node, dict):
        value = node.get("value")
        if node.get("operator") == "between" and isinstance(value, list) and len(value) == 2:
            try:
                if _sort_key(value[0]) > _sort_key(value[1]):
                    node["value"] = [value[1], value[0]]
            except (TypeError, ValueError):
                pass
        for child in node.values():
            _order_between_pairs(child)
    elif isinstance(node, list):
        for child in node:
            _order_between_pairs(child)


def _sort_key(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    instant = _instant(value) or _instant(f"{value}T00:00:00Z")
    if instant is not None:
        return (1, instant.timestamp())
    return (0, float(value))


@schemathesis.hook
def before_call(context, case, **kwargs):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or any(
            info.mode.is_negative for info in meta.components.values()):
        return  # a request drawn to be invalid (in any part) is left as it is
    now = datetime.now(timezone.utc)
    path = case.operation.path
    body = case.body
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict):
            _keep_dates(item, path, now)
            if "/customers" in path:
                _keep_profile(item)
    if isinstance(body, dict) and path.startswith("/api/flows"):
        _keep_flow(body)
    if isinstance(body, dict) and path.endswith("/events") and isinstance(body.get("properties"), dict):
        body["properties"] = _plain_keys(body["properties"])
    if isinstance(body, dict):
        if isinstance(body.get("rules"), list):
            _order_between_pairs(body["rules"])
            _keep_within_limits(body["rules"])
        if path.endswith("/imports"):  # the file's header must fit the type, and a mapping name its columns
            if body.get("type") not in CSV_BY_TYPE:
                body["type"] = "customers"
            body["file"] = CSV_BY_TYPE[body["type"]]
            body.pop("mapping", None)
        email = unquote((case.path_parameters or {}).get("email") or "")  # path values come encoded
        if "/by-email/" in path and "email" in body:
            body["email"] = email
    query = case.query
    if isinstance(query, dict):
        start, end = _instant(query.get("from")), _instant(query.get("to"))
        if start is not None and end is not None and end <= start:
            query["to"] = _iso(start + timedelta(days=1))


def _keep_flow(body):
    """A flow the run can save: no segment or date attribute to name (it makes none), branch targets
    next/exit (a later index depends on the list drawn), waits of 1 minute to 365 days, message
    content without placeholders (braces), no template to copy, no attribute to set (none declared)."""
    trigger = body.get("trigger")
    if isinstance(trigger, dict):
        if trigger.get("type") in ("segment.entered", "anniversary"):
            body["trigger"] = {"type": "customer.created"}
        elif isinstance(trigger.get("rules"), list):
            _order_between_pairs(trigger["rules"])
            _keep_within_limits(trigger["rules"])
    for step in body.get("steps") if isinstance(body.get("steps"), list) else ():
        if not isinstance(step, dict):
            continue
        kind = step.get("type")
        if kind == "branch":
            for key in ("then", "else"):
                if isinstance(step.get(key), int):
                    step[key] = "next"
            if isinstance(step.get("rules"), list):
                _order_between_pairs(step["rules"])
                _keep_within_limits(step["rules"])
        elif kind == "wait" and "until" not in step:
            minutes = step.get("days", 0) * 1440 + step.get("hours", 0) * 60 + step.get("minutes", 0)
            if not 0 < minutes <= 365 * 1440:
                for key in ("days", "hours"):
                    step.pop(key, None)
                step["minutes"] = 60
        elif kind == "wait":
            for key in ("days", "hours", "minutes"):
                step.pop(key, None)
        elif kind == "send":
            step.pop("templateId", None)
            for key in ("subject", "preheader", "html", "text"):
                if isinstance(step.get(key), str):
                    step[key] = step[key].replace("{", "(").replace("}", ")")
            step.setdefault("subject", "Hello")
            if not step.get("html") and not step.get("text"):
                step["text"] = "Hello"
        elif kind == "update":
            step.pop("attributes", None)
            if not step.get("addTags") and not step.get("removeTags"):
                step["addTags"] = ["fuzz"]


def _plain_keys(node):
    """An event's properties with keys that are not empty, start with no ``$`` and hold no dot."""
    if isinstance(node, dict):
        return {("k" + key).replace("$", "_").replace(".", "_"): _plain_keys(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain_keys(value) for value in node]
    return node


def _keep_profile(item):
    if isinstance(item.get("attributes"), dict):
        item["attributes"] = {}
    if isinstance(item.get("timezone"), str) and item["timezone"].lower() not in _ZONES:
        item["timezone"] = "Europe/Paris"


def _keep_dates(item, path, now):
    for name in FUTURE_ONLY:
        moment = _instant(item.get(name))
        if moment is not None and moment <= now + timedelta(minutes=5):
            item[name] = _iso(now + timedelta(days=1))
    for where, name in (("/orders", "date"), ("/events", "at")):  # at most a day ahead
        moment = _instant(item.get(name)) if where in path else None
        if moment is not None and moment > now + timedelta(hours=12):
            item[name] = _iso(now)


def _keep_within_limits(rules, budget=None, depth=1):
    """At most 50 rules and groups in all, 5 levels deep (README: the rule language): drop the rest."""
    budget = budget if budget is not None else [50]
    kept = []
    for node in rules:
        if budget[0] <= 0:
            break
        if isinstance(node, dict) and isinstance(node.get("rules"), list):
            if depth >= 5:
                continue
            budget[0] -= 1
            _keep_within_limits(node["rules"], budget, depth + 1)
        else:
            budget[0] -= 1
        kept.append(node)
    rules[:] = kept

