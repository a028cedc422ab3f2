"""Lifecycle flows (``/api/flows``): a trigger, steps, and their statistics.

The trigger and each step are objects told apart by ``type``; each type's fields are checked by its
own schema below, and every problem is named by its path (``steps.2.then``)."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from models.flow import ENROLMENT_STATUSES, FLOW_STATUSES, STEP_TYPES, TRIGGERS
from schemas.attribute import AttributeValues, declared_types
from schemas.common import (
    ApiSchema,
    InputSchema,
    NormalizedEmail,
    ObjectIdString,
    PageQuery,
    StrictBoolean,
    TrimmedString,
    UtcDateTime,
    id_field,
    page_of,
    require_some,
    single_line,
)
from schemas.customer import tags_field
from schemas.event import EVENT_NAME_PATTERN
from schemas.rules import RuleList
from schemas.template import ContentIn, TrackingIn
from segments.compiler import NUMBER, as_group, rule_errors

MAX_STEPS, MAX_WAIT_DAYS, MAX_REENTRY_DAYS, MAX_INACTIVE_DAYS = 50, 365, 3650, 3650
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ORDER_FIELDS = {"amount": NUMBER}  # what an order.created trigger's orderRules may test
ORDER_OPERATORS = (">", ">=", "<", "<=", "=", "!=")
ORDER_RULES_JSON = {"type": "array", "minItems": 1, "maxItems": 10, "items": {
    "type": "object", "additionalProperties": False, "required": ["field", "operator", "value"], "properties": {
        "field": {"type": "string", "enum": ["amount"]}, "operator": {"type": "string", "enum": list(ORDER_OPERATORS)},
        "value": {"type": "number", "minimum": -1e15, "maximum": 1e15}}},
    "description": "Rules on the order, all of which must hold: {field: \"amount\", operator, value (a number)}."}
HH_MM = r"^([01]\d|2[0-3]):[0-5]\d$"


class _Rules(InputSchema):
    rules = RuleList(metadata={"description": "Only customers these rules match (the segment rule language)."})
    logical_operator = fields.String(load_default="AND", validate=validate.OneOf(("AND", "OR")))


# --- triggers ----------------------------------------------------------------------------------
class CustomerCreatedTrigger(_Rules):
    type = fields.String(required=True, validate=validate.Equal("customer.created"))


class OrderRuleList(fields.Field):
    """Rules on the order itself: the field ``amount`` with the number operators."""

    def __init__(self, **kwargs):
        super().__init__(metadata=ORDER_RULES_JSON, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not 1 <= len(value) <= 10:
            raise ValidationError("Must be a list of 1 to 10 rules.")
        for index, rule in enumerate(value):
            if not isinstance(rule, dict) or set(rule) != {"field", "operator", "value"}:
                raise ValidationError(f"[{index}]: a rule is exactly {{field, operator, value}}.")
            if rule["operator"] not in ORDER_OPERATORS:
                raise ValidationError(f"[{index}].operator: must be one of {', '.join(ORDER_OPERATORS)}.")
            if type(rule["value"]) not in (int, float):
                raise ValidationError(f"[{index}].value: must be a number.")
        errors = rule_errors(as_group(value), fields=ORDER_FIELDS)
        if errors:
            raise ValidationError({str(e.path[1:]): [e.message] for e in errors} if len(errors) > 1
                                  else [f"{'.'.join(map(str, errors[0].path[1:]))}: {errors[0].message}"])
        return value


class OrderCreatedTrigger(_Rules):
    type = fields.String(required=True, validate=validate.Equal("order.created"))
    order_rules = OrderRuleList()


class SegmentEnteredTrigger(InputSchema):
    type = fields.String(required=True, validate=validate.Equal("segment.entered"))
    segment_id = ObjectIdString(required=True)


class InactiveTrigger(InputSchema):
    type = fields.String(required=True, validate=validate.Equal("inactive"))
    days = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_INACTIVE_DAYS), metadata={
        "description": "Enter when the customer's last order is this many days old (customers who never ordered "
                       "do not enter). Once per lapse: a new order and a new lapse enter again."})


class AnniversaryTrigger(InputSchema):
    type = fields.String(required=True, validate=validate.Equal("anniversary"))
    attribute = fields.String(required=True, metadata={
        "description": "A declared date attribute's key (a birthday), or createdAt (the customer's sign-up)."})

    @validates_schema
    def _a_date(self, data, **kwargs):
        key = data.get("attribute")
        if key and key != "createdAt" and declared_types().get(key) != "date":
            raise ValidationError("Must be createdAt or a declared attribute of type date.", "attribute")


class EventTrigger(_Rules):
    type = fields.String(required=True, validate=validate.Equal("event"))
    name = fields.String(required=True, validate=validate.Regexp(EVENT_NAME_PATTERN), metadata={
        "description": "The event's name as posted to POST /api/events."})


TRIGGER_SCHEMAS = {"customer.created": CustomerCreatedTrigger, "order.created": OrderCreatedTrigger,
                   "segment.entered": SegmentEnteredTrigger, "inactive": InactiveTrigger,
                   "anniversary": AnniversaryTrigger, "event": EventTrigger}


# --- steps ---------------------------------------------------------------------------------------
class Target(fields.Field):
    """Where a branch goes: ``"next"``, ``"exit"``, or a later step's index."""

    def __init__(self, **kwargs):
        super().__init__(metadata={"oneOf": [{"type": "string", "enum": ["next", "exit"]},
                                             {"type": "integer", "minimum": 1, "maximum": MAX_STEPS - 1}]}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value in ("next", "exit") or (type(value) is int and 0 < value < MAX_STEPS):
            return value
        raise ValidationError("Must be \"next\", \"exit\" or the index of a later step.")


class LocalTime(InputSchema):
    time = fields.String(required=True, validate=validate.Regexp(HH_MM, error="Must be HH:MM (24-hour)."))
    weekdays = fields.List(fields.String(validate=validate.OneOf(WEEKDAYS)), validate=validate.Length(min=1, max=7),
                           metadata={"description": "Only on these days (default: any day)."})


class WaitStep(InputSchema):
    """A duration (``days``/``hours``/``minutes``, together more than 0 and at most 365 days) or
    ``until`` a time of day (on given weekdays) in the customer's own zone."""

    # (stated in words: Redocly cannot follow "required" in a oneOf of a schema reached through a oneOf)
    OPENAPI = {"description": "A duration (days, hours, minutes: together more than 0 and at most 365 days) or "
                              "until a time of day (on given weekdays) in the customer's own zone; not both."}

    type = fields.String(required=True, validate=validate.Equal("wait"))
    days = fields.Integer(strict=True, validate=validate.Range(0, MAX_WAIT_DAYS))
    hours = fields.Integer(strict=True, validate=validate.Range(0, MAX_WAIT_DAYS * 24))
    minutes = fields.Integer(strict=True, validate=validate.Range(0, MAX_WAIT_DAYS * 24 * 60))
    until = fields.Nested(LocalTime)

    @validates_schema
    def _one_kind(self, data, **kwargs):
        total = data.get("days", 0) * 1440 + data.get("hours", 0) * 60 + data.get("minutes", 0)
        duration = any(k in data for k in ("days", "hours", "minutes"))
        if duration and "until" in data:
            raise ValidationError("Give a duration or until, not both.", "until")
        if "until" not in data and not 0 < total <= MAX_WAIT_DAYS * 1440:
            raise ValidationError(f"A wait lasts more than 0 minutes and at most {MAX_WAIT_DAYS} days "
                                  "(or give until).", "days")


class BranchStep(InputSchema):
    """Go to ``then`` when the customer matches ``rules`` at that moment, else to ``else``."""

    type = fields.String(required=True, validate=validate.Equal("branch"))
    rules = RuleList(required=True)
    logical_operator = fields.String(load_default="AND", validate=validate.OneOf(("AND", "OR")))
    then = Target(load_default="next")
    else_ = Target(data_key="else", load_default="exit")


class SendStep(ContentIn):
    """A message, as a campaign's: subject and bodies, or a template's (copied when the flow is saved)."""

    OPENAPI = {"description": "A subject and html and/or text, or a templateId (whose content fills what is "
                              "not given)."}

    type = fields.String(required=True, validate=validate.Equal("send"))
    template_id = ObjectIdString()
    from_name = TrimmedString(validate=[validate.Length(max=100), single_line])
    reply_to = NormalizedEmail()
    tracking = fields.Nested(TrackingIn, metadata={
        "description": "Opens and clicks, as a campaign's (both on unless turned off)."})

    @validates_schema
    def _content(self, data, **kwargs):
        if "template_id" in data:
            return
        if not data.get("subject"):
            raise ValidationError("A subject (or a templateId) is required.", "subject")
        if not data.get("html") and not data.get("text"):
            raise ValidationError("Give html, text or both (or a templateId).", "text")


class UpdateStep(InputSchema):
    """Change the customer: add and remove tags, set (or with null remove) attributes."""

    OPENAPI = {"description": "At least one of addTags, removeTags, attributes."}
    CHANGES = ("add_tags", "remove_tags", "attributes")

    type = fields.String(required=True, validate=validate.Equal("update"))
    add_tags = tags_field()
    remove_tags = tags_field()
    attributes = AttributeValues()

    @validates_schema
    def _something(self, data, **kwargs):
        require_some(data, self.CHANGES)


class ExitStep(InputSchema):
    type = fields.String(required=True, validate=validate.Equal("exit"))


STEP_SCHEMAS = {"wait": WaitStep, "branch": BranchStep, "send": SendStep, "update": UpdateStep, "exit": ExitStep}
# their OpenAPI components (apidocs.spec registers them)
TRIGGER_COMPONENTS = {kind: "FlowTrigger" + schema.__name__.replace("Trigger", "")
                      for kind, schema in TRIGGER_SCHEMAS.items()}
STEP_COMPONENTS = {kind: "FlowStep" + schema.__name__.replace("Step", "") for kind, schema in STEP_SCHEMAS.items()}


def flow_components():
    """``(component name, schema class)`` of every trigger and step type."""
    return [*((TRIGGER_COMPONENTS[k], s) for k, s in TRIGGER_SCHEMAS.items()),
            *((STEP_COMPONENTS[k], s) for k, s in STEP_SCHEMAS.items())]


def _one_of(components):
    return {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in components.values()]}


def _typed(value, schemas, kinds):
    """Load ``value`` with the schema its ``type`` names."""
    if not isinstance(value, dict):
        raise ValidationError("Must be an object with a type.")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in schemas:
        raise ValidationError({"type": [f"Must be one of: {', '.join(kinds)}."]})
    return schemas[kind]().load(value)


class TriggerField(fields.Field):
    def __init__(self, **kwargs):
        super().__init__(metadata={**_one_of(TRIGGER_COMPONENTS), "description":
            "customer.created {rules?}; order.created {rules?, orderRules?}; segment.entered {segmentId}; "
            "inactive {days}; anniversary {attribute}; event {name, rules?}."}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return _typed(value, TRIGGER_SCHEMAS, TRIGGERS)


class StepList(fields.Field):
    def __init__(self, **kwargs):
        super().__init__(metadata={
            "type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": _one_of(STEP_COMPONENTS),
            "description": "wait {days|hours|minutes | until {time, weekdays?}}; branch {rules, then?, else?: a later "
                           "step's index, next or exit}; "
                           "send {subject, html|text | templateId, preheader?, fromName?, replyTo?}; "
                           "update {addTags?, removeTags?, attributes?}; exit."}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list) or not value:
            raise ValidationError("Must be a list of 1 to 50 steps.")
        if len(value) > MAX_STEPS:
            raise ValidationError(f"At most {MAX_STEPS} steps.")
        steps, errors = [], {}
        for index, item in enumerate(value):
            try:
                steps.append(_typed(item, STEP_SCHEMAS, STEP_TYPES))
            except ValidationError as exc:
                errors[index] = exc.messages
        for index, step in enumerate(steps if not errors else ()):
            for name in ("then", "else_"):
                target = step.get(name)
                if isinstance(target, int) and not index < target < len(steps):
                    errors.setdefault(index, {})[name.rstrip("_")] = [
                        f"A branch goes forward: a step index from {index + 1} to {len(steps) - 1}."]
        if errors:
            raise ValidationError(errors)
        return steps


class FlowIn(InputSchema):
    """Body of ``POST /flows``: saved as a draft."""

    name = TrimmedString(required=True, validate=[validate.Length(min=1, max=200), single_line])
    description = TrimmedString(validate=validate.Length(max=1000))
    trigger = TriggerField(required=True)
    steps = StepList(required=True)
    reentry_days = fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, MAX_REENTRY_DAYS),
                                  metadata={"description": "A customer may enter again this many days after their "
                                                           "last entry; null (the default): once, ever."})
    transactional = StrictBoolean(metadata={"description": "Exempt from the frequency cap (receipts, "
                                                             "password resets): never for marketing."})


class FlowPatch(FlowIn):
    """Body of ``PATCH /flows/<id>``: the fields to change. On an active or paused flow, a new
    trigger or steps apply to customers who enter from then on; those inside go on as they entered."""

    SOME_OF = ("name", "description", "trigger", "steps", "reentry_days", "transactional")
    name = TrimmedString(validate=[validate.Length(min=1, max=200), single_line])
    description = TrimmedString(allow_none=True, validate=validate.Length(max=1000))
    trigger = TriggerField()
    steps = StepList()

    @validates_schema
    def _not_empty(self, data, **kwargs):
        require_some(data, self.SOME_OF)


class FlowQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(FLOW_STATUSES))


class FlowOut(ApiSchema):
    id = id_field()
    name = fields.String()
    description = fields.String(allow_none=True)
    trigger = fields.Dict()
    steps = fields.List(fields.Dict())
    reentry_days = fields.Integer(allow_none=True)
    transactional = fields.Boolean()
    status = fields.String(metadata={"enum": list(FLOW_STATUSES)})
    version = fields.Integer()
    activated_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()
    updated_at = UtcDateTime()
    generated = fields.Dict(allow_none=True)


FlowPage = page_of(FlowOut, "FlowPage")


class StepStatsOut(Schema):
    step = fields.Integer()
    type = fields.String()
    reached = fields.Integer(metadata={"description": "Enrolments that ran this step (or are waiting in it)."})
    waiting = fields.Integer()
    outcomes = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "Finished runs by outcome: waited; yes/no (branch); sent, failed, capped, suppressed, "
                       "skipped (send); updated; exited."})
    opened = fields.Integer(metadata={"description": "send: recipients with a human open (bots apart, as campaigns)."})
    clicked = fields.Integer(metadata={"description": "send: recipients with a human click."})


class FlowStatsOut(ApiSchema):
    entered = fields.Integer()
    running = fields.Integer(metadata={"description": "Inside the flow: waiting or due."})
    waiting = fields.Integer(metadata={"description": "Inside the flow, due later (a wait, quiet hours)."})
    completed = fields.Integer()
    exited = fields.Integer()
    sent = fields.Integer(metadata={"description": "Messages handed to the vendor."})
    capped = fields.Integer()
    opened = fields.Integer(metadata={"description": "Messages with a human open (one per message)."})
    clicked = fields.Integer(metadata={"description": "Messages with a human click (one per message)."})
    converted = fields.Integer(metadata={"description": "Enrolled customers who ordered after entering."})
    revenue = fields.Float(metadata={"description": "Their orders' amount after entering."})
    by_status = fields.Dict(keys=fields.String(validate=validate.OneOf(ENROLMENT_STATUSES)), values=fields.Integer())
    steps = fields.List(fields.Nested(StepStatsOut))
