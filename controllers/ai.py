"""The AI assistant. The model gets only what a request needs and never any write access.

Whatever the model writes is checked by the server before anyone sees it: rules by the same schema as
rules a user writes, messages by the same template check as a campaign's message, summaries for
numbers the statistics do not contain.
"""
import json
import re
from datetime import datetime, timezone

from marshmallow import ValidationError

from controllers.messages import TemplateProblem, check_template
from errors import ApiError, flatten_errors
from schemas.ai import GeneratedRules
from schemas.campaign import MAX_MESSAGE
from segments import FIELDS, GROUP_OPERATORS, MAX_RULES, OPERATORS, OPERATORS_BY_TYPE
from services import gemini

SYSTEM_INSTRUCTION = (
    "You are the assistant of a CRM used by marketers: customers, their orders, audience segments "
    "built from rules, and message campaigns. Help with marketing tasks for this CRM: audience ideas, "
    "campaign messages, timing, and reading campaign results. You cannot see or change the CRM's "
    "data; say so when asked to. Be concise and practical."
)


def ask(prompt):
    """Answer a marketer's free-form question."""
    return gemini.generate(prompt, system=SYSTEM_INSTRUCTION)


WEEKDAYS = {1: "Sunday", 2: "Monday", 3: "Tuesday", 4: "Wednesday", 5: "Thursday", 6: "Friday", 7: "Saturday"}
RATIONALE_INSTRUCTION = (
    "In one sentence of at most 30 words, explain to a marketer why the given weekday and hour (UTC) is "
    "a good time to send a campaign, using only the order counts given. Do not invent other numbers."
)


def send_time(with_rationale=False):
    """The weekday and hour (UTC) with the most orders, from a histogram computed by the database.

    The model, when asked for a rationale, sees only the aggregate counts: never a customer.
    """
    from models import Order

    rows = Order._get_collection().aggregate([
        {"$group": {"_id": {"day": {"$dayOfWeek": "$date"}, "hour": {"$hour": "$date"}}, "orders": {"$sum": 1}}},
    ])
    histogram = sorted(
        ({"dayOfWeek": r["_id"]["day"], "weekday": WEEKDAYS[r["_id"]["day"]], "hour": r["_id"]["hour"],
          "orders": r["orders"]} for r in rows),
        key=lambda slot: (-slot["orders"], slot["dayOfWeek"], slot["hour"]),
    )
    result = {"best": histogram[0] if histogram else None, "basedOnOrders": sum(s["orders"] for s in histogram),
              "timezone": "UTC", "histogram": histogram, "rationale": None}
    if with_rationale and histogram:
        best = histogram[0]
        facts = (f"Best slot: {best['weekday']} {best['hour']:02d}:00 UTC with {best['orders']} of "
                 f"{result['basedOnOrders']} orders. Next: " + ", ".join(
                     f"{s['weekday']} {s['hour']:02d}:00 ({s['orders']})" for s in histogram[1:4]))
        try:
            result["rationale"] = gemini.generate(facts, system=RATIONALE_INSTRUCTION).text.strip()
        except ApiError as exc:  # the computed answer stands without the model
            result["rationaleError"] = exc.message
    return result


SUMMARY_INSTRUCTION = (
    "You summarise an email campaign's results for a marketer in two or three plain sentences. Use only "
    "the numbers given, written exactly as given; do not compute or invent any other number."
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _rate(part, whole):
    return round(100 * part / whole, 1) if whole else 0.0


def _numbers_in(text):
    return {match.replace(",", "") for match in _NUMBER.findall(text)}


def _allowed_numbers(*values):
    allowed = set()
    for value in values:
        if isinstance(value, float):  # a rate may be written 80.0 or 80
            allowed |= {f"{value:.1f}", str(round(value))}
        else:
            allowed.add(str(value))
    return allowed


def campaign_summary(campaign_id):
    """A plain-language summary: the server computes every number, the model only phrases them,
    and a text containing any number not among them is refused (502)."""
    from controllers.campaigns import get_campaign, stats

    campaign = get_campaign(campaign_id)
    numbers = stats(campaign)
    attempted = numbers["sent"] + numbers["delivered"] + numbers["failed"]
    rates = {"deliveredPercent": _rate(numbers["delivered"], attempted),
             "failedPercent": _rate(numbers["failed"], attempted)}
    reasons = numbers["failure_reasons"][:3]
    facts = "\n".join([
        f"Campaign: {campaign.name} ({campaign.status})",
        f"Audience: {numbers['audience_size'] or 0}; sent and awaiting receipt: {numbers['sent']}; "
        f"delivered: {numbers['delivered']}; failed: {numbers['failed']}; pending: {numbers['pending']}",
        f"Delivered: {rates['deliveredPercent']}%; failed: {rates['failedPercent']}%",
        "Top failure reasons: " + (", ".join(f"{r['reason']} ({r['count']})" for r in reasons) or "none"),
    ])
    text = gemini.generate(facts, system=SUMMARY_INSTRUCTION).text.strip()
    allowed = _allowed_numbers(
        numbers["audience_size"] or 0, numbers["sent"], numbers["delivered"], numbers["failed"],
        numbers["pending"], numbers["total"], attempted, rates["deliveredPercent"], rates["failedPercent"],
        *[r["count"] for r in reasons],
    ) | _numbers_in(campaign.name) | _numbers_in(" ".join(str(r["reason"]) for r in reasons))
    stray = sorted(_numbers_in(text) - allowed)
    if stray:
        raise ApiError(502, "The AI summary contained numbers that are not in the campaign's statistics",
                       {"summary": [f"Unexpected number(s): {', '.join(stray)}"]})
    return {
        "campaignId": str(campaign.pk),
        "stats": {"audienceSize": numbers["audience_size"] or 0, "sent": numbers["sent"],
                  "delivered": numbers["delivered"], "failed": numbers["failed"], "pending": numbers["pending"],
                  "failureReasons": reasons, **rates},
        "summary": text,
    }


# --- natural language → segment rules -----------------------------------------------------------------
FIELD_MEANINGS = {
    "totalSpend": "the customer's total spend (a number)",
    "numVisits": "how many times the customer visited (a number)",
    "lastVisitDate": "the date of the customer's last visit",
    "createdAt": "when the customer was added to the CRM",
    "name": "the customer's name",
    "email": "the customer's email address",
    "emailDomain": "the part of the email after @, e.g. gmail.com",
    "tags": "labels on the customer, e.g. vip",
}


def _enum(values):
    return {"type": "string", "format": "enum", "enum": list(values)}


_RULE_PROPERTIES = {
    "field": _enum(FIELDS),
    "operator": _enum(OPERATORS),
    "value": {"type": "string", "description": 'Always text: "5000", "2024-05-01", "90" (days), '
                                               '"a,b" for in/notIn, "low,high" for between, "true" for exists'},
}
# Gemini's response schemas cannot recurse, so the tree is spelled out two levels deep: top-level items
# are rules or groups ({op, rules}) of rules; unused keys of an item are dropped before validation.
SEGMENT_RULES_SCHEMA = {
    "type": "object",
    "properties": {
        "logicalOperator": _enum(GROUP_OPERATORS),
        "rules": {"type": "array", "min_items": 1, "max_items": MAX_RULES, "items": {
            "type": "object",
            "description": "Either a rule (field, operator, value) or a group (op, rules)",
            "properties": {**_RULE_PROPERTIES, "op": _enum(GROUP_OPERATORS), "rules": {
                "type": "array", "items": {"type": "object", "properties": _RULE_PROPERTIES,
                                           "required": ["field", "operator", "value"]}}},
        }},
        "explanation": {"type": "string", "description": "One or two plain sentences: whom the rules select"},
    },
    "required": ["logicalOperator", "rules", "explanation"],
}
SEGMENT_INSTRUCTION = (
    "You turn a marketer's description of an audience into rules over this CRM's customers, as JSON. "
    "Fields, and the operators each allows:\n"
    + "\n".join(f"- {field}: {FIELD_MEANINGS[field]}; operators: {' '.join(OPERATORS_BY_TYPE[kind])}"
                for field, kind in FIELDS.items())
    + "\nValues are always text. Dates are YYYY-MM-DD. withinLastDays and notWithinLastDays take a number "
    "of days (three months is 90); someone who has not visited in N days is lastVisitDate "
    "notWithinLastDays N. between takes \"low,high\" (inclusive); in and notIn take \"a,b,c\"; exists "
    "takes \"true\" or \"false\". Text matches case-insensitively. logicalOperator joins the top-level "
    "rules; put a part joined the other way in a group {op, rules}. Use only conditions the description "
    "asks for. explanation says in plain words whom the rules select."
)
_generated_rules = GeneratedRules()


def _from_model(node):
    """One item of the model's flattened answer → a rule or a group of the rule language."""
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("rules"), list) and node["rules"]:
        return {"op": node.get("op") or "AND", "rules": [_from_model(child) for child in node["rules"]]}
    return {key: node[key] for key in ("field", "operator", "value") if key in node}


def _loads(text):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationError({"_schema": [f"Not valid JSON: {exc}"]}) from exc
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["Must be a JSON object."]})
    return data


def _checked_rules(text):
    """The model's answer loaded by the schema for user-written rules, or its errors by path."""
    try:
        data = _loads(text)
        if isinstance(data.get("rules"), list):
            data = {**data, "rules": [_from_model(node) for node in data["rules"]]}
        return _generated_rules.load(data), None
    except ValidationError as exc:
        return None, flatten_errors(exc.messages)


def segment_rules(description):
    """Rules for a description, validated like a user's; one repair round, then 502. Nothing is saved.

    The model sees the description and the rule language, never a customer; the audience size is
    counted by the database afterwards.
    """
    from controllers.segments import audience

    today = datetime.now(timezone.utc).date().isoformat()
    prompt = f"Today is {today} (UTC).\nDescribe as rules: {description}"
    text = gemini.generate(prompt, system=SEGMENT_INSTRUCTION, json_schema=SEGMENT_RULES_SCHEMA).text
    answer, errors = _checked_rules(text)
    if errors:
        problems = "\n".join(f"- {path}: {' '.join(messages)}" for path, messages in errors.items())
        repair = (f"{prompt}\n\nYour previous answer was:\n{text[:4000]}\n\nIt is not valid:\n{problems}\n"
                  "Answer again with corrected JSON.")
        text = gemini.generate(repair, system=SEGMENT_INSTRUCTION, json_schema=SEGMENT_RULES_SCHEMA).text
        answer, errors = _checked_rules(text)
    if errors:
        raise ApiError(502, "The AI service's rules were not valid, even after a correction", errors)
    return {
        "rules": answer["rules"],
        "logicalOperator": answer["logical_operator"],
        "explanation": answer["explanation"].strip(),
        "audienceSize": audience(answer["rules"], answer["logical_operator"]).count(),
    }


# --- message variants ---------------------------------------------------------------------------------
VARIANTS_INSTRUCTION = (
    "You write messages for a CRM's marketing campaigns. To personalise, use only these placeholders, "
    "written exactly so: {{name}}, {{firstName}}, {{email}}, {{totalSpend}} (the customer's total spend, "
    "a number without currency). No other braces, placeholders, template tags or filters. Give each "
    "variant a clearly different angle, say the angle in a few words, and keep each message under 600 "
    "characters."
)


def _variants_schema(count):
    return {
        "type": "object",
        "properties": {"variants": {"type": "array", "min_items": count, "max_items": count, "items": {
            "type": "object",
            "properties": {"message": {"type": "string"}, "angle": {"type": "string"}},
            "required": ["message", "angle"],
        }}},
        "required": ["variants"],
    }


def _problem_with(message, seen):
    """Why a written message cannot be used as a campaign message, or None."""
    if not isinstance(message, str) or not message.strip():
        return "The message is empty."
    if len(message) > MAX_MESSAGE:
        return f"The message is longer than {MAX_MESSAGE} characters."
    if message.strip().casefold() in seen:
        return "The same as another variant."
    try:
        check_template(message)
    except TemplateProblem as exc:
        return str(exc)
    return None


def message_variants(data):
    """``count`` messages for an objective, each passing the campaign template check.

    A variant with an unknown placeholder (or any template code) is rejected, not repaired: removing a
    placeholder would change what the sentence says. The rejected ones are returned with the reason.
    """
    count = data["count"]
    prompt = "\n".join([
        f"Write {count} variants of a campaign message.",
        f"Objective: {data['objective']}",
        f"Audience: {data.get('audience') or 'all customers'}",
        f"Tone: {data.get('tone') or 'friendly and clear'}",
    ])
    text = gemini.generate(prompt, system=VARIANTS_INSTRUCTION, json_schema=_variants_schema(count)).text
    try:
        written = _loads(text).get("variants")
    except ValidationError as exc:
        raise ApiError(502, "The AI service's answer was not readable", flatten_errors(exc.messages)) from exc
    if not isinstance(written, list):
        raise ApiError(502, "The AI service's answer was not readable", {"variants": ["Must be a list."]})
    variants, rejected, seen = [], [], set()
    for item in written:
        message = item.get("message") if isinstance(item, dict) else None
        problem = _problem_with(message, seen)
        if problem:
            rejected.append({"message": message if isinstance(message, str) else None, "reason": problem})
        elif len(variants) < count:
            seen.add(message.strip().casefold())
            angle = item.get("angle")
            variants.append({"message": message.strip(), "angle": angle.strip() if isinstance(angle, str) else None,
                             "placeholders": check_template(message)})
    if not variants:
        raise ApiError(502, "The AI service wrote no usable variant",
                       {f"variants[{index}]": [r["reason"]] for index, r in enumerate(rejected)} or None)
    return {"variants": variants, "rejected": rejected}
