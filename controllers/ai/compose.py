"""The assistant composes parts of a campaign: audience rules from a description, message variants.

Both ask the model for JSON against a response schema, then hold the answer to the rules a user's own
input must pass. Nothing is saved; the caller decides.
"""
import json
from datetime import datetime, timezone

from marshmallow import ValidationError

from engine.templates import TemplateProblem, check_template
from controllers.segments import audience
from errors import ApiError, flatten_errors
from models import AttributeDefinition
from schemas.ai import GeneratedRules
from schemas.attribute import declared_types, rule_fields
from schemas.campaign import MAX_MESSAGE
from segments import FIELDS, GROUP_OPERATORS, MAX_RULES, OPERATORS, OPERATORS_BY_TYPE
from services import gemini

FIELD_MEANINGS = {
    "totalSpend": "the customer's total spend (a number)",
    "numVisits": "how many times the customer visited (a number)",
    "lastVisitDate": "the date of the customer's last visit",
    "createdAt": "when the customer was added to the CRM",
    "name": "the customer's name",
    "email": "the customer's email address",
    "emailDomain": "the part of the email after @, e.g. gmail.com",
    "tags": "labels on the customer, e.g. vip",
    "rfm.r": "recency score 1-5 (5: ordered most recently; customers who never ordered have none)",
    "rfm.f": "frequency score 1-5 (5: orders most often)",
    "rfm.m": "monetary score 1-5 (5: spends most)",
    "rfm.segment": "RFM segment: champions, loyal, cannot_lose, at_risk, hibernating, need_attention, new "
                   "or promising",
}


def _enum(values):
    return {"type": "string", "format": "enum", "enum": list(values)}




def segment_rules_schema(fields):
    """The response schema for rules over ``fields`` (the built-in ones and the declared attributes).

    Gemini's response schemas cannot recurse, so the tree is spelled out two levels deep: top-level
    items are rules or groups ({op, rules}) of rules; unused keys of an item are dropped before
    validation."""
    rule = {
        "field": _enum(fields),
        "operator": _enum(OPERATORS),
        "value": {"type": "string", "description": 'Always text: "5000", "2024-05-01", "90" (days), '
                                                   '"a,b" for in/notIn, "low,high" for between, "true" for exists'},
    }
    return {
        "type": "object",
        "properties": {
            "logicalOperator": _enum(GROUP_OPERATORS),
            "rules": {"type": "array", "minItems": 1, "maxItems": MAX_RULES, "items": {
                "type": "object",
                "description": "Either a rule (field, operator, value) or a group (op, rules)",
                "properties": {**rule, "op": _enum(GROUP_OPERATORS), "rules": {
                    "type": "array", "items": {"type": "object", "properties": rule,
                                               "required": ["field", "operator", "value"]}}},
            }},
            "explanation": {"type": "string", "description": "One or two plain sentences: whom the rules select"},
        },
        "required": ["logicalOperator", "rules", "explanation"],
    }


def segment_instruction(fields, meanings):
    """The system instruction: the rule language over ``fields``, each with its meaning."""
    return (
        "You turn a marketer's description of an audience into rules over this CRM's customers, as JSON. "
        "Fields, and the operators each allows:\n"
        + "\n".join(f"- {field}: {meanings[field]}; operators: {' '.join(OPERATORS_BY_TYPE[kind])}"
                    for field, kind in fields.items())
        + "\nValues are always text. Dates are YYYY-MM-DD. withinLastDays and notWithinLastDays take a number "
        "of days (three months is 90); someone who has not visited in N days is lastVisitDate "
        "notWithinLastDays N. between takes \"low,high\" (inclusive); in and notIn take \"a,b,c\"; exists "
        "takes \"true\" or \"false\". Text matches case-insensitively, except in list attributes. "
        "logicalOperator joins the top-level rules; put a part joined the other way in a group {op, rules}. "
        "Use only conditions the description asks for. explanation says in plain words whom the rules select."
    )


SEGMENT_RULES_SCHEMA = segment_rules_schema(FIELDS)  # without declared attributes
SEGMENT_INSTRUCTION = segment_instruction(FIELDS, FIELD_MEANINGS)


def _rule_language():
    """``(instruction, schema)`` over the built-in fields and the declared attributes, each declared
    one described by its own description."""
    definitions = list(AttributeDefinition.objects.only("key", "type", "description").order_by("key"))
    if not definitions:
        return SEGMENT_INSTRUCTION, SEGMENT_RULES_SCHEMA
    fields = rule_fields({d.key: d.type for d in definitions})
    meanings = {**FIELD_MEANINGS, **{
        f"attributes.{d.key}": f"a custom attribute ({d.type}{': ' + d.description if d.description else ''})"
        for d in definitions}}
    return segment_instruction(fields, meanings), segment_rules_schema(fields)
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
    except RecursionError as exc:  # deeper than Python's parser goes (a few hundred levels); anything it
        # parses is shallow enough for the rule checks, which refuse more than 5 levels
        raise ValidationError({"_schema": ["Nested too deeply to read."]}) from exc
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


def generate_checked(prompt, instruction, schema, check, what, keep=4000):
    """Ask for JSON against ``schema`` and hold the answer to ``check(text)`` → ``(result, errors by
    path)``; one repair round naming the problems, then a 502 saying what was still wrong."""
    text = gemini.generate(prompt, system=instruction, json_schema=schema).text
    result, errors = check(text)
    if errors:
        problems = "\n".join(f"- {path}: {' '.join(messages)}" for path, messages in errors.items())
        repair = (f"{prompt}\n\nYour previous answer was:\n{text[:keep]}\n\nIt is not valid:\n{problems}\n"
                  "Answer again with corrected JSON.")
        text = gemini.generate(repair, system=instruction, json_schema=schema).text
        result, errors = check(text)
    if errors:
        raise ApiError(502, f"The AI service's {what} not valid, even after a correction", errors)
    return result


def segment_rules(description):
    """Rules for a description, validated like a user's; one repair round, then 502. Nothing is saved.

    The model sees the description and the rule language, never a customer; the audience size is
    counted by the database afterwards.
    """
    today = datetime.now(timezone.utc).date().isoformat()
    prompt = f"Today is {today} (UTC).\nDescribe as rules: {description}"
    instruction, schema = _rule_language()
    answer = generate_checked(prompt, instruction, schema, _checked_rules, "rules were")
    return {
        "rules": answer["rules"],
        "logical_operator": answer["logical_operator"],
        "explanation": answer["explanation"].strip(),
        "audience_size": audience(answer["rules"], answer["logical_operator"]).count(),
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
        "properties": {"variants": {"type": "array", "minItems": count, "maxItems": count, "items": {
            "type": "object",
            "properties": {"message": {"type": "string"}, "angle": {"type": "string"}},
            "required": ["message", "angle"],
        }}},
        "required": ["variants"],
    }


def _checked_variant(message, seen):
    """``(placeholders, None)`` for a message usable as a campaign's, else ``(None, why not)``."""
    if not isinstance(message, str) or not message.strip():
        return None, "The message is empty."
    if len(message) > MAX_MESSAGE:
        return None, f"The message is longer than {MAX_MESSAGE} characters."
    if message.strip().casefold() in seen:
        return None, "The same as another variant."
    try:
        return check_template(message, set(declared_types())), None
    except TemplateProblem as exc:
        return None, str(exc)


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
        placeholders, problem = _checked_variant(message, seen)
        if problem:
            rejected.append({"message": message if isinstance(message, str) else None, "reason": problem})
        elif len(variants) < count:
            seen.add(message.strip().casefold())
            angle = item.get("angle")
            variants.append({"message": message.strip(), "angle": angle.strip() if isinstance(angle, str) else None,
                             "placeholders": placeholders})
    if not variants:
        raise ApiError(502, "The AI service wrote no usable variant",
                       {f"variants[{index}]": [r["reason"]] for index, r in enumerate(rejected)} or None)
    return {"variants": variants, "rejected": rejected}
