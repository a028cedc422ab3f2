"""Lifecycle flows: define (a draft), activate, pause, archive; their statistics."""
import engine
from controllers.common import get_or_404, object_id_or_404, paginate, user_id
from engine import flows as flow_engine
from errors import ApiError
from models import Flow, Segment, Template
from models.base import utcnow
from models.flow import ACTIVE, ARCHIVED, DRAFT, PAUSED
from schemas.attribute import rule_fields
from schemas.common import camel_case
from segments.compiler import RuleError, compile_group, compile_rules, path_text

CONTENT = ("subject", "preheader", "html", "text")
# action: (the states it starts from, the state it leads to)
TRANSITIONS = {"activate": ((DRAFT, PAUSED), ACTIVE), "pause": ((ACTIVE,), PAUSED),
               "archive": ((DRAFT, ACTIVE, PAUSED), ARCHIVED)}


def _stored(loaded):
    """A loaded trigger or step as stored and shown: the API's camelCase keys (``else_`` → ``else``)."""
    return {("else" if key == "else_" else camel_case(key)): value for key, value in loaded.items()}


def _send_content(step, path):
    """A send step's checked content: its own fields, the rest from its template (copied now)."""
    fields = {key: step.get(key) for key in CONTENT}
    if step.get("templateId") is not None:
        template = Template.objects(pk=step["templateId"]).first()
        if template is None:
            raise ApiError.validation({f"{path}.templateId": ["No such template."]})
        own_body = fields["html"] or fields["text"]
        for key in ("subject", "preheader") if own_body else CONTENT:
            fields[key] = fields[key] or getattr(template, key)
    try:
        prepared = engine.prepare_content(fields)
    except engine.ContentProblem as exc:
        raise ApiError.validation({f"{path}.{key}": messages for key, messages in exc.errors.items()},
                                  "Invalid content") from exc
    tracking = step.get("tracking") or {}
    return {**step, **{key: prepared.get(key) for key in (*CONTENT, "links")},
            "tracking": {"opens": tracking.get("opens", True), "clicks": tracking.get("clicks", True)}}


def _trigger(loaded):
    trigger = _stored(loaded)
    if trigger["type"] == "segment.entered" and not Segment.objects(pk=trigger["segmentId"]).count():
        raise ApiError.validation({"trigger.segmentId": ["No such segment."]})
    if trigger["type"] == "segment.entered":
        trigger["segmentId"] = str(trigger["segmentId"])
    return trigger


def _steps(loaded):
    steps = []
    for index, item in enumerate(loaded):
        step = _stored(item)
        if step["type"] == "send":
            if step.get("templateId") is not None:
                step["templateId"] = str(step["templateId"])
            step = _send_content(step, f"steps[{index}]")
        steps.append(step)
    return steps


def create_flow(data, actor=None):
    """Save a flow as a draft."""
    flow = Flow(name=data["name"], description=data.get("description"), trigger=_trigger(data["trigger"]),
                steps=_steps(data["steps"]), reentry_days=data.get("reentry_days"),
                transactional=bool(data.get("transactional")), created_by=user_id(actor),
                generated=data.get("generated") or {})
    return flow.save(force_insert=True)


def list_flows(query):
    """Newest first, optionally of one status."""
    queryset = Flow.objects(status=query["status"]) if query.get("status") else Flow.objects
    return paginate(queryset.order_by("-created_at", "-id"), query["page"], query["per_page"])


def get_flow(flow_id):
    return get_or_404(Flow, "flow", flow_id)


def update_flow(flow_id, data):
    """Change a flow that is not archived. A new trigger or steps bump ``version``: customers who
    enter from then on follow them; those inside go on with the steps they entered with."""
    current = get_flow(flow_id)
    changes = {"set__updated_at": utcnow()}
    for name in ("name", "reentry_days", "transactional"):
        if name in data:
            changes[f"set__{name}"] = data[name]
    if "description" in data:
        changes["set__description" if data["description"] else "unset__description"] = data["description"] or True
    if "trigger" in data:
        changes["set__trigger"] = _trigger(data["trigger"])
    if "steps" in data:
        changes["set__steps"] = _steps(data["steps"])
    if "trigger" in data or "steps" in data:
        changes["inc__version"] = 1
    updated = Flow.objects(pk=current.pk, status__ne=ARCHIVED).modify(new=True, **changes)
    if updated is None:
        raise ApiError.conflict("An archived flow cannot change", {"status": [ARCHIVED]})
    return updated


def delete_flow(flow_id):
    """Delete a draft (a flow that ran keeps its history: archive it)."""
    pk = object_id_or_404("flow", flow_id)
    if Flow.objects(pk=pk, status=DRAFT).delete():
        return
    if Flow.objects(pk=pk).count():
        raise ApiError.conflict("Only a draft can be deleted: archive a flow that has run", {"status": ["not draft"]})
    raise ApiError.not_found("flow", flow_id)


def _check_runnable(flow):
    """409 when the flow's stored rules no longer compile or its segment is gone (it could enter nobody)."""
    trigger = flow.trigger
    try:
        if trigger.get("rules"):
            compile_rules(trigger["rules"], trigger.get("logicalOperator", "AND"), fields=rule_fields())
        if trigger["type"] == "segment.entered":
            segment = Segment.objects(pk=trigger["segmentId"]).only("rules").first()
            if segment is None:
                raise ApiError.conflict("The flow's segment was deleted: choose another",
                                        {"trigger.segmentId": ["No such segment."]})
            compile_group(segment.rules, fields=rule_fields())
    except RuleError as exc:
        raise ApiError.conflict("The flow's rules no longer compile: change them",
                                {f"trigger.{path_text(exc.path)}": [exc.message]}) from exc


def transition(flow_id, action):
    """``activate`` (draft or paused → active), ``pause`` (active → paused: nobody enters, nobody inside
    moves until it is active again), ``archive`` (→ archived: everyone inside exits)."""
    flow = get_flow(flow_id)
    sources, target = TRANSITIONS[action]
    if action == "activate":
        _check_runnable(flow)
    changes = {"set__status": target, "set__updated_at": utcnow()}
    if action == "activate" and flow.activated_at is None:
        changes["set__activated_at"] = utcnow()
    updated = Flow.objects(pk=flow.pk, status__in=sources).modify(new=True, **changes)
    if updated is None:
        current = Flow.objects(pk=flow.pk).only("status").first()
        status = current.status if current else "deleted"
        raise ApiError.conflict(f"Cannot {action} a flow that is {status}", {"status": [status]})
    if target == ARCHIVED:
        flow_engine.end_all(updated.pk, "flow archived")
    if target == ACTIVE:
        flow_engine.kick()
    return updated


def flow_stats(flow_id):
    return flow_engine.stats(get_flow(flow_id))
