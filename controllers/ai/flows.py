"""The assistant drafts a lifecycle flow from a description.

The model answers in JSON against a response schema of the flow language; the answer is held to the
schema a user's own flow must pass (:class:`schemas.flow.FlowIn`) and the same checks when saved (a
segment that exists, content whose placeholders are known), with one correction round naming every
problem, then 502. A valid answer is saved as a **draft**: the assistant never activates a flow.
"""
from marshmallow import ValidationError

from controllers import flows as flow_controller
from controllers.ai.compose import _from_model, _loads, _rule_language, generate_checked
from errors import ApiError, flatten_errors
from models import Segment
from models.flow import STEP_TYPES, TRIGGERS
from schemas.flow import STEP_SCHEMAS, TRIGGER_SCHEMAS, WEEKDAYS, FlowIn

MAX_SEGMENTS_SHOWN = 50
TRIGGER_KEYS = {kind: {field.data_key or name for name, field in schema().fields.items()}
                for kind, schema in TRIGGER_SCHEMAS.items()}
STEP_KEYS = {kind: {field.data_key or name for name, field in schema().fields.items()}
             for kind, schema in STEP_SCHEMAS.items()}
AI_STEP_KEYS = {"type", "days", "hours", "minutes", "until", "rules", "logicalOperator", "then", "else", "subject",
                "text", "addTags", "removeTags"}  # what the model may write (no HTML, templates or attribute values)
_flow_in = FlowIn()


def _enum(values):
    return {"type": "string", "format": "enum", "enum": list(values)}


def flow_schema(rules_schema):
    """The response schema: a flow, flattened (Gemini's schemas cannot say "one of"), its rule lists
    those of the segment rules schema."""
    rules = rules_schema["properties"]["rules"]
    join = _enum(("AND", "OR"))
    target = {"type": "string", "description": '"next", "exit", or a later step\'s index as digits, e.g. "3"'}
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "A short name for the flow"},
            "trigger": {"type": "object", "properties": {
                "type": _enum(TRIGGERS), "rules": rules, "logicalOperator": join,
                "orderRules": {"type": "array", "items": {"type": "object", "properties": {
                    "field": _enum(("amount",)), "operator": _enum((">", ">=", "<", "<=", "=", "!=", "between")),
                    "value": {"type": "string"}}, "required": ["field", "operator", "value"]}},
                "segmentId": {"type": "string"}, "days": {"type": "integer"},
                "attribute": {"type": "string"}, "name": {"type": "string"}},
                "required": ["type"]},
            "steps": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "object", "properties": {
                "type": _enum(STEP_TYPES), "days": {"type": "integer"}, "hours": {"type": "integer"},
                "minutes": {"type": "integer"},
                "until": {"type": "object", "properties": {"time": {"type": "string"},
                                                           "weekdays": {"type": "array", "items": _enum(WEEKDAYS)}}},
                "rules": rules, "logicalOperator": join, "then": target, "else": target,
                "subject": {"type": "string"}, "text": {"type": "string"},
                "addTags": {"type": "array", "items": {"type": "string"}},
                "removeTags": {"type": "array", "items": {"type": "string"}}},
                "required": ["type"]}},
            "reentryDays": {"type": "integer", "nullable": True},
            "explanation": {"type": "string", "description": "One or two plain sentences: what the flow does"},
        },
        "required": ["name", "trigger", "steps", "explanation"],
    }


def _instruction(rule_instruction, segments):
    shown = "\n".join(f"- {s.pk}: {s.name}" for s in segments) or "(none)"
    return (
        "You design lifecycle flows for a CRM: automatic messages that customers' actions start. Answer with "
        "one flow as JSON.\n"
        "Triggers (trigger.type): customer.created (rules? on the customer); order.created (rules? on the "
        "customer, orderRules? on the order's amount); segment.entered (segmentId: one of the saved segments "
        "below); inactive (days: enter when the last order is that many days old: win-back); anniversary "
        "(attribute: createdAt or a declared date attribute, e.g. a birthday); event (name: an event other "
        "systems post, e.g. cart.abandoned).\n"
        "Steps, in order: wait (days, hours or minutes; or until {time HH:MM, weekdays?} in the customer's "
        "zone); branch (rules, then, else: \"next\", \"exit\" or a LATER step's index, counting from 0); send "
        "(subject and text; placeholders only {{name}}, {{firstName}}, {{email}}, {{totalSpend}}, with a "
        "fallback as {{ firstName | default(\"there\") }}); update (addTags, removeTags); exit.\n"
        "reentryDays: null when a customer should go through the flow once, else the days before they may "
        "enter again. Use only what the description asks for; explanation says in plain words what the flow "
        "does.\n"
        f"Saved segments (id: name):\n{shown}\n\n"
        "Rules use the segment rule language:\n" + rule_instruction
    )


def _digits(value):
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


def _from_model_flow(data):
    """The model's flattened answer → a flow body: each trigger's and step's keys those of its type
    (empty ones dropped), rule items rebuilt, step targets as numbers."""
    flow = {key: data[key] for key in ("name", "reentryDays") if key in data}
    trigger = data.get("trigger")
    if isinstance(trigger, dict):
        allowed = TRIGGER_KEYS.get(trigger.get("type"), {"type"})
        flow["trigger"] = {key: value for key, value in trigger.items()
                           if key in allowed and value not in (None, "", [], {})}
        if isinstance(flow["trigger"].get("rules"), list):
            flow["trigger"]["rules"] = [_from_model(node) for node in flow["trigger"]["rules"]]
    else:
        flow["trigger"] = trigger
    steps = data.get("steps")
    if isinstance(steps, list):
        flow["steps"] = []
        for item in steps:
            if not isinstance(item, dict):
                flow["steps"].append(item)
                continue
            allowed = STEP_KEYS.get(item.get("type"), {"type"}) & AI_STEP_KEYS
            step = {key: value for key, value in item.items() if key in allowed and value not in (None, "", [], {})}
            if step.get("type") == "wait" and isinstance(step.get("until"), dict):
                step["until"] = {k: v for k, v in step["until"].items() if v not in (None, "", [])}
            for key in ("then", "else"):
                if key in step:
                    step[key] = _digits(step[key])
            if isinstance(step.get("rules"), list):
                step["rules"] = [_from_model(node) for node in step["rules"]]
            flow["steps"].append(step)
    else:
        flow["steps"] = steps
    return flow


def _checked(text):
    """``(loaded flow body, None)`` for an answer a user could have posted, else ``(None, errors by path)``."""
    try:
        data = _loads(text)
        explanation = data.get("explanation")
        loaded = _flow_in.load(_from_model_flow(data))
    except ValidationError as exc:
        return None, flatten_errors(exc.messages)
    return (loaded, explanation), None


def draft_flow(description, actor=None):
    """A flow drafted from ``description``: validated like a user's (one repair round, then 502) and saved
    as a draft, never activated. Its ``generated`` field keeps the description and the explanation."""
    rule_instruction, rules_schema = _rule_language()
    segments = list(Segment.objects.only("id", "name").order_by("-created_at").limit(MAX_SEGMENTS_SHOWN))
    instruction, schema = _instruction(rule_instruction, segments), flow_schema(rules_schema)
    prompt = f"Describe as a flow: {description}"

    def check(text):  # the schema's checks, then the save's (a segment that exists, known placeholders)
        answer, errors = _checked(text)
        return (None, errors) if errors else _saved(answer, description, actor)

    return generate_checked(prompt, instruction, schema, check, "flow was", keep=6000)


def _saved(answer, description, actor):
    """Save the checked flow as a draft; ``(flow, None)``, or ``(None, errors)`` when the save-time
    checks refuse it (an unknown segment, content with an unknown placeholder)."""
    loaded, explanation = answer
    explanation = explanation.strip() if isinstance(explanation, str) else ""
    loaded["description"] = (loaded.get("description") or explanation)[:1000] or None
    loaded["generated"] = {"description": description, "explanation": explanation}
    try:
        return flow_controller.create_flow(loaded, actor), None
    except ApiError as exc:
        if exc.status != 400:
            raise
        return None, exc.errors or {"_schema": [exc.message]}
