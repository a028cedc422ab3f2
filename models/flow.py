"""Lifecycle flows (``/api/flows``), the customers inside them, and the ledger of their steps.

- :class:`Flow`: a trigger and a list of steps; ``draft`` → ``active`` ⇄ ``paused`` → ``archived``.
- :class:`FlowEnrolment`: one customer's pass through a flow. Its ``_id`` is ``<flow>:<customer>:<n>``
  (the customer's n-th entry), so two triggers racing to enter the same customer write one document.
  It names the flow's version it entered with, whose steps it follows (:class:`FlowVersion`: editing an
  active flow changes what new entries get, never the path of those already inside), the next step's
  index, when it is due, and a lease while a worker runs it.
- :class:`FlowStepRun`: one finished step of one enrolment, ``_id`` ``<enrolment>:<step index>``,
  written once, with its outcome (a branch's answer, a message capped or suppressed); a send handed off
  or failed is recorded by its delivery record alone: see :mod:`engine.flows`.
"""
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from models.base import TimestampedDocument

DRAFT, ACTIVE, PAUSED, ARCHIVED = "draft", "active", "paused", "archived"
FLOW_STATUSES = (DRAFT, ACTIVE, PAUSED, ARCHIVED)
TRIGGERS = ("customer.created", "order.created", "segment.entered", "inactive", "anniversary", "event")
STEP_TYPES = ("wait", "branch", "send", "update", "exit")
# an enrolment is running its steps (waiting or due), or finished: completed the last step, or exited
RUNNING, COMPLETED, EXITED = "running", "completed", "exited"
ENROLMENT_STATUSES = (RUNNING, COMPLETED, EXITED)


class Flow(TimestampedDocument):
    """A trigger and steps; ``version`` grows whenever either changes."""

    name = StringField(required=True, max_length=200)
    description = StringField(max_length=1000)
    trigger = DictField(required=True)
    steps = ListField(DictField(), required=True)
    reentry_days = IntField(db_field="reentryDays")  # None: a customer enters once, ever
    transactional = BooleanField(default=False)  # exempt from the frequency cap
    status = StringField(choices=FLOW_STATUSES, default=DRAFT)
    version = IntField(default=1)
    activated_at = DateTimeField(db_field="activatedAt")
    created_by = ObjectIdField(db_field="createdBy")
    generated = DictField()  # made by the AI assistant: {prompt, model}

    meta = {"collection": "flows", "indexes": ["-created_at", ("status", "trigger.type")]}


class FlowEnrolment(Document):
    """One customer inside one flow."""

    id = StringField(primary_key=True)  # "<flow>:<customer>:<n>"
    flow_id = ObjectIdField(db_field="flow", required=True)
    customer_id = ObjectIdField(db_field="customer", required=True)
    number = IntField(db_field="n", required=True)  # the customer's n-th entry into this flow
    key = StringField()  # what entered it (an order, an event, a lapse, a year): never twice for one
    version = IntField()  # the flow's version it entered with: its steps are that version's (FlowVersion)
    transactional = BooleanField(default=False)
    position = IntField(default=0)  # the next step's index
    tries = IntField(default=0)  # claims of this position (more than 1: an earlier try may have done some)
    wait = DictField()  # {step, until}: a wait step's end, fixed when it first ran
    status = StringField(choices=ENROLMENT_STATUSES, default=RUNNING)
    due_at = DateTimeField(db_field="dueAt")  # when the next step may run (None once finished)
    claimed_by = StringField(db_field="claimedBy")
    claimed_at = DateTimeField(db_field="claimedAt")
    entered_at = DateTimeField(db_field="enteredAt", required=True)
    finished_at = DateTimeField(db_field="finishedAt")
    exit_reason = StringField(db_field="exitReason")
    last_error = StringField(db_field="lastError")  # the last error a step raised (it runs again later)
    converted_at = DateTimeField(db_field="convertedAt")  # an order within FLOW_CONVERSION_DAYS of entering
    conversion = DictField()  # {orderId, amount}: that order
    context = DictField()  # the trigger's data ({orderId, amount} or {eventId, name}) for the record

    meta = {"collection": "flow_enrolments",
            "indexes": [("status", "due_at"), ("flow_id", "customer_id", "-number"), ("flow_id", "status", "due_at"),
                        ("customer_id", "-entered_at"), {"fields": ["claimed_by"], "sparse": True}]}


class FlowVersion(Document):
    """A flow's steps as of one version (``_id`` ``<flow>:<version>``), kept for its enrolments."""

    id = StringField(primary_key=True)
    flow_id = ObjectIdField(db_field="flow", required=True)
    version = IntField(required=True)
    steps = ListField(DictField())

    meta = {"collection": "flow_versions"}


class FlowStepRun(Document):
    """One step of one enrolment: written when it first runs, finished with its ``outcome``. A send step
    that was handed off or failed has none: its delivery record (``flow``, ``enrolment``, ``flowStep``,
    ``sentAt`` when handed off) is its run."""

    id = StringField(primary_key=True)  # "<enrolment>:<step index>"
    enrolment = StringField(required=True)
    flow_id = ObjectIdField(db_field="flow", required=True)
    customer_id = ObjectIdField(db_field="customer", required=True)
    step = IntField(required=True)
    type = StringField(required=True)
    started_at = DateTimeField(db_field="startedAt", required=True)
    at = DateTimeField()  # when it finished
    outcome = StringField()  # waited, yes/no, capped, suppressed, updated, exited (sent/failed: the delivery)
    detail = StringField()
    until = DateTimeField()  # a wait's end
    delivery = ObjectIdField()  # a send's delivery record

    meta = {"collection": "flow_steps",
            "indexes": [("flow_id", "step", "outcome"), ("customer_id", "-started_at", "-id"), "enrolment"]}
