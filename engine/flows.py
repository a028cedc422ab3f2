"""Lifecycle flows: customers enter on a trigger and go through the flow's steps, each exactly once.

**Entering.** An enrolment's ``_id`` is ``<flow>:<customer>:<n>``, the customer's n-th entry, so two
triggers (two workers, two beats, a request and the sweep) that enter the same customer at the same
time write one document: the second insert is a duplicate and enters nobody. Whether a customer may
enter is read from their latest enrolment in the flow: never before; or ``reentryDays`` after the
last entry; win-back (``inactive``) and ``anniversary`` entries are once per occurrence (per lapse,
per year: the enrolment's ``key``). Many customers enter with one read of their latest entries and
one ``insert_many`` per chunk (a bulk write or the sweep's run of a segment).

**Running.** A worker claims due enrolments of active flows with a lease (one ``update_many`` over a
read of their ids, conditional on each being unclaimed or its lease expired; each claim counts in the
enrolment's ``tries``), runs each (in ``_id`` order) from its ``position`` until it waits or finishes,
and writes what the batch did every ``ENGINE_FLUSH_S`` and when it ends, in set-based writes: the
delivery records, the step runs (``_id`` ``<enrolment>:<step>``, each once; a send that was handed off
or failed has its delivery record as its run, one write fewer per message), then the enrolments'
moves, each a compare-and-set naming the claim and the position it started from (a worker whose lease
was taken over changes nothing). An enrolment waits in the database (``dueAt``, and a wait's end on the
enrolment), never in a worker, so a restart loses nobody. A crash before a write leaves the enrolments
run since the last one claimed where they were: after the lease another worker runs them again, and
- a **send** is the same message again: its delivery record's id, and so its ``Message-ID`` (the
  vendor's idempotency key, as for campaigns), is derived from ``<enrolment>:<step>``; a position tried
  before looks its record up first, so a message recorded as sent or failed is not sent again;
- a **branch** takes the same path: its answer is written the moment it is decided, not with the batch;
- an **update** sets and adds the same values again; a **wait** keeps its end.

**Frequency cap and quiet hours.** Before a message is handed off, ``FREQUENCY_CAP`` takes one of
the customer's slots (:mod:`engine.cap`: atomic, so racing senders never exceed it; a re-run finds its
own slot) or ends the step ``capped``;
``QUIET_HOURS`` in the customer's zone put the enrolment back to sleep until they end.
"""
import calendar
import hashlib
import logging
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone

from bson import ObjectId
from flask import current_app
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError

import metrics
from engine import content, localtime, tracking
from engine.cap import describe, forget, frequency_cap, reserve
from engine.planner import consenting
from engine.store import DUPLICATE_KEY
from engine.templates import CUSTOMER_FIELDS
from engine.vendors import OutgoingMessage, VendorRejected, VendorUnavailable
from models import Customer, Delivery, Flow, FlowEnrolment, FlowStepRun, FlowVersion, Order, Segment
from models.base import utcnow
from models.db import customer_ids, in_chunks
from models.delivery import FAILED, SENT
from models.flow import ACTIVE, COMPLETED, EXITED, RUNNING
from schemas.attribute import rule_fields
from segments.compiler import NUMBER, RuleError, compile_group, compile_rules
from services import unsubscribe

log = logging.getLogger(__name__)
NEXT, EXIT = "next", "exit"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CHUNK = 1000
SWEEP_STATE = "flows"
VENDOR_RETRY = timedelta(minutes=1)
ERROR_RETRY = timedelta(minutes=5)  # an enrolment whose step raised runs again after this
CUSTOMER_PROJECTION = dict.fromkeys((*CUSTOMER_FIELDS, "timezone", "subscribed", "email"), 1)
RUN_BUDGET_S = 30  # a run job hands on to another after this long, so one job never holds a thread


class Wait:
    """A step's answer: sleep until ``until`` (for ``reason``) and run this step again then."""

    def __init__(self, until, reason):
        self.until, self.reason = until, reason


# --- entering ------------------------------------------------------------------------------------
def _enrolments():
    return FlowEnrolment._get_collection()


def _runs():
    return FlowStepRun._get_collection()


def _customer_query(trigger, fields=None):
    """The trigger's customer rules as a filter ({} when it has none)."""
    if not trigger.get("rules"):
        return {}
    return compile_rules(trigger["rules"], trigger.get("logicalOperator", "AND"), fields=fields or rule_fields())


def _matching(query, customer_pks):
    """Those of ``customer_pks`` the filter ``query`` matches (the database decides)."""
    if not query:
        return list(customer_pks)
    found = set()
    for chunk in in_chunks(sorted(customer_pks)):  # sorted: each chunk a run of ids
        found.update(doc["_id"] for doc in Customer._get_collection().find(
            {"$and": [{"_id": customer_ids(chunk)}, query]}, {"_id": 1}))
    return [pk for pk in customer_pks if pk in found]


def _compiled(flows, compile_):
    """``(flow, compile_(flow))`` for each of ``flows`` whose rules compile; one whose rules no longer
    do (an attribute or segment changed since it was saved) takes nobody, and says so in the log."""
    for flow in flows:
        try:
            yield flow, compile_(flow)
        except (RuleError, LookupError) as exc:
            log.warning("flow %s: its rules no longer compile (%s): nobody enters", flow.pk, exc)


def _latest(flow_pk, customer_pks):
    """``{customer: {n, at, key}}``: each customer's latest entry into the flow."""
    wanted = set(customer_pks)
    rows = _enrolments().aggregate([
        {"$match": {"flow": flow_pk, "customer": customer_ids(customer_pks)}},
        {"$sort": {"customer": 1, "n": -1}},
        {"$group": {"_id": "$customer", "n": {"$first": "$n"}, "at": {"$first": "$enteredAt"},
                    "key": {"$first": "$key"}}},
    ])
    return {row["_id"]: row for row in rows if row["_id"] in wanted}


def enter(flow, entries, now=None):
    """Enter ``entries`` (``[(customer pk, key or None, context dict)]``) into ``flow`` where its
    re-entry rules allow; returns how many entered. A customer listed twice enters once."""
    now = now or utcnow()
    trigger_type = flow.trigger["type"]
    per_occurrence = trigger_type in ("inactive", "anniversary")
    reentry = timedelta(days=flow.reentry_days) if flow.reentry_days else None
    entered = 0
    unique = sorted({pk: (pk, key, context) for pk, key, context in reversed(entries)}.values(),
                    key=lambda entry: entry[0])  # in id order: each chunk a run of ids
    if unique:
        keep_version(flow)
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start:start + CHUNK]
        latest = _latest(flow.pk, [pk for pk, _, _ in chunk])
        docs = []
        for pk, key, context in chunk:
            last = latest.get(pk)
            if last is not None:
                if per_occurrence and key is not None and last.get("key") == key:
                    continue  # this lapse, this year: entered already
                if not per_occurrence and reentry is None:
                    continue  # once, ever
                if reentry is not None and last["at"] > now - reentry:
                    continue
            number = 1 if last is None else last["n"] + 1
            doc = {"_id": f"{flow.pk}:{pk}:{number}", "flow": flow.pk, "customer": pk, "n": number,
                   "version": flow.version, "transactional": bool(flow.transactional),
                   "position": 0, "tries": 0, "status": RUNNING, "dueAt": now, "enteredAt": now,
                   "context": context or {}}
            if key is not None:
                doc["key"] = key
            docs.append(doc)
        entered += _insert(docs)
    if entered:
        log.info("flow %s: %d customer(s) entered", flow.pk, entered)
    return entered


_KEPT = set()  # versions this process has stored: a version never changes, so once is enough


def keep_version(flow):
    """Store the flow's steps as of its version, once, before anyone enters with it: enrolments name
    the version they entered with and follow its steps (an edited flow changes what new entries get).
    Written on entering (not when the flow is edited) so no entry can name a version not stored yet;
    each process writes a version once, not once per entering write."""
    key = f"{flow.pk}:{flow.version}"
    if key not in _KEPT:
        _versions().update_one({"_id": key},
                               {"$setOnInsert": {"flow": flow.pk, "version": flow.version, "steps": flow.steps}},
                               upsert=True)
        _KEPT.add(key)


def _versions():
    return FlowVersion._get_collection()


def _steps_of(doc, cache):
    """The steps the enrolment entered with (its flow's version)."""
    key = f"{doc['flow']}:{doc.get('version')}"
    if key not in cache:
        found = _versions().find_one({"_id": key}, {"steps": 1})
        cache[key] = found["steps"] if found else []
    return cache[key]


def _insert(docs):
    """Insert enrolments; those that exist already (a racing trigger wrote them) are not counted."""
    if not docs:
        return 0
    try:
        return len(_enrolments().insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return len(docs) - len(errors)


def _active(trigger_type, **match):
    """Active flows with this trigger type (raw paths: MongoEngine reads ``trigger__type`` as ``$type``)."""
    return list(Flow.objects(__raw__={"status": ACTIVE, "trigger.type": trigger_type,
                                      **{f"trigger.{key}": value for key, value in match.items()}}))


def safely(hook, *args):
    """Run a trigger hook after a write that already happened: a failure is logged, never the
    caller's (the periodic sweep catches up customer.created and segment entries)."""
    try:
        return hook(*args)
    except Exception:
        log.exception("flows: %s failed", hook.__name__)
        return 0


def kick(entered=1):
    """Run the new entries' first steps now rather than at the next sweep."""
    if entered:
        from engine import runner
        try:
            runner.submit("crm.run_flows")
        except runner.QueueUnavailable:  # the sweep runs them
            log.warning("flows: the broker refused the run job; the sweep will run the new entries")


def customers_created(customer_pks, now=None):
    """``customer.created`` flows enter the new customers their rules match; segment flows too."""
    entered = 0
    for flow, query in _compiled(_active("customer.created"), lambda flow: _customer_query(flow.trigger)):
        entered += enter(flow, [(pk, None, None) for pk in _matching(query, customer_pks)], now)
    entered += _segment_entries(customer_pks, now)
    kick(entered)
    return entered


def customers_changed(customer_pks, now=None):
    """Customers whose data changed may have entered a segment a flow starts from."""
    entered = _segment_entries(customer_pks, now)
    kick(entered)
    return entered


def orders_created(orders, now=None):
    """``order.created`` flows enter the orders' customers (the order's and the customer's rules
    permitting); every order converts its customer's recent entries; segment flows are re-checked.
    ``orders``: ``[{"_id", "customer", "amount", "date"}]``."""
    if not orders:
        return 0
    _convert(orders)
    entered = 0
    for flow, (query, order_query) in _compiled(_active("order.created"), _order_queries):
        chosen = orders
        if order_query:
            ids = [o["_id"] for o in orders]
            fitting = {doc["_id"] for chunk in in_chunks(ids) for doc in Order._get_collection().find(
                {"$and": [{"_id": {"$in": chunk}}, order_query]}, {"_id": 1})}
            chosen = [o for o in orders if o["_id"] in fitting]
        allowed = set(_matching(query, list({o["customer"] for o in chosen})))
        entered += enter(flow, [(o["customer"], str(o["_id"]), {"orderId": str(o["_id"]), "amount": o["amount"]})
                                for o in chosen if o["customer"] in allowed], now)
    entered += _segment_entries(list({o["customer"] for o in orders}), now)
    kick(entered)
    return entered


def _order_queries(flow):
    """An order flow's filters: on the customer, and on the order (``{}`` when it has none)."""
    order_rules = flow.trigger.get("orderRules")
    return (_customer_query(flow.trigger),
            compile_rules(order_rules, fields={"amount": NUMBER}) if order_rules else {})


def event_recorded(event, now=None):
    """``event`` flows with the event's name enter its customer."""
    entered = 0
    for flow, query in _compiled(_active("event", name=event.name), lambda flow: _customer_query(flow.trigger)):
        if _matching(query, [event.customer_id]):
            entered += enter(flow, [(event.customer_id, str(event.pk),
                                     {"eventId": str(event.pk), "name": event.name})], now)
    kick(entered)
    return entered


def _segment_query(flow):
    """The segment's stored rules as a filter (None when the segment was deleted)."""
    segment = Segment.objects(pk=flow.trigger.get("segmentId")).only("rules").first()
    return None if segment is None else compile_group(segment.rules, fields=rule_fields())


def _segment_entries(customer_pks, now=None, flows=None):
    entered = 0
    for flow, query in _compiled(_active("segment.entered") if flows is None else flows, _segment_query):
        if query is not None:
            entered += enter(flow, [(pk, None, None) for pk in _matching(query, customer_pks)], now)
    return entered


def _convert(orders):
    """Each entry not converted yet is converted by its customer's first order within
    ``FLOW_CONVERSION_DAYS`` after entering: the candidates read per chunk of customers, the
    conversions written in one bulk write (each conditional, so an entry converts once)."""
    window = timedelta(days=current_app.config["FLOW_CONVERSION_DAYS"])
    now = utcnow()
    by_customer = {}
    for order in sorted(orders, key=lambda o: (o.get("date") or now, o["_id"])):
        by_customer.setdefault(order["customer"], []).append(order)
    earliest = min((o.get("date") or now) for o in orders) - window
    writes = []
    for chunk in in_chunks(sorted(by_customer)):  # sorted: each chunk a run of ids
        wanted = set(chunk)
        for entry in _enrolments().find({"customer": customer_ids(chunk), "convertedAt": None,
                                         "enteredAt": {"$gte": earliest}}, {"customer": 1, "enteredAt": 1}):
            if entry["customer"] not in wanted:
                continue
            order = next((o for o in by_customer[entry["customer"]]
                          if entry["enteredAt"] <= (o.get("date") or now) <= entry["enteredAt"] + window), None)
            if order is not None:  # its first order in the window; conditional: an entry converts once
                writes.append(UpdateOne({"_id": entry["_id"], "convertedAt": None}, {"$set": {
                    "convertedAt": order.get("date") or now,
                    "conversion": {"orderId": order["_id"], "amount": order["amount"]}}}))
    if writes:
        _enrolments().bulk_write(writes, ordered=False)


# --- the sweep: segment, win-back and anniversary entries ----------------------------------------
def claim_sweep(now=None):
    """Take the periodic entry sweep when due (a lease on its state document); True for the caller
    that runs it."""
    now = now or utcnow()
    interval = timedelta(seconds=current_app.config["FLOW_SWEEP_INTERVAL_S"])
    try:
        from models import RfmState
        RfmState._get_collection().update_one(
            {"_id": SWEEP_STATE, "$or": [{"nextAt": {"$lte": now}}, {"nextAt": None}]},
            {"$set": {"nextAt": now + interval, "startedAt": now}}, upsert=True)
    except DuplicateKeyError:
        return False
    return True


def _members(query, fields=None):
    """Customers matching ``query`` in ``_id`` order, in chunks of :data:`CHUNK` (keyset reads)."""
    projection = dict.fromkeys(fields or (), 1) or {"_id": 1}
    last = None
    while True:
        page = {"$and": [query, {"_id": {"$gt": last}}]} if last is not None else query
        docs = list(Customer._get_collection().find(page, projection).sort("_id", 1).limit(CHUNK))
        if not docs:
            return
        yield docs
        last = docs[-1]["_id"]


def sweep(now=None):
    """Enter every customer a segment, win-back or anniversary flow is due to take, and catch up on
    customer.created entries missed (a crash between a customer's insert and their entry); returns
    how many entered."""
    now = now or utcnow()
    entered = 0
    for flow in Flow.objects(status=ACTIVE):
        kind = flow.trigger["type"]
        try:
            if kind == "segment.entered":
                query = _segment_query(flow)
                if query is None:
                    continue
                entered += sum(enter(flow, [(d["_id"], None, None) for d in docs], now) for docs in _members(query))
            elif kind == "inactive":
                cutoff = now - timedelta(days=flow.trigger["days"])
                for docs in _members({"lastVisitDate": {"$lte": cutoff}}, ("_id", "lastVisitDate")):
                    entered += enter(flow, [(d["_id"], d["lastVisitDate"].isoformat(), None) for d in docs], now)
            elif kind == "anniversary":
                entered += _anniversaries(flow, now)
            elif kind == "customer.created" and flow.activated_at:
                since = max(flow.activated_at, now - timedelta(days=1))
                query = {"$and": [{"createdAt": {"$gte": since}}, _customer_query(flow.trigger)]}
                entered += sum(enter(flow, [(d["_id"], None, None) for d in docs], now) for docs in _members(query))
        except (RuleError, LookupError) as exc:
            log.warning("flow %s: its rules do not compile (%s): nobody enters", flow.pk, exc)
    return entered


def _anniversaries(flow, now):
    """Customers whose date (a declared attribute, or ``createdAt``) falls on today's month and day in
    the workspace's zone, in an earlier year: a range per year, so the database compares (no
    ``$expr``). A 29 February counts on 28 February in other years."""
    zone = localtime.zone_of({}, {})
    today = now.replace(tzinfo=timezone.utc).astimezone(zone).date()
    field = "createdAt" if flow.trigger["attribute"] == "createdAt" else f"attributes.{flow.trigger['attribute']}"
    days = [(today.month, today.day)]
    if (today.month, today.day) == (2, 28) and not calendar.isleap(today.year):
        days.append((2, 29))
    ranges = []
    for year in range(1900, today.year):
        for month, day in days:
            if (month, day) == (2, 29) and not calendar.isleap(year):
                continue
            start = datetime(year, month, day)
            ranges.append({field: {"$gte": start, "$lt": start + timedelta(days=1)}})
    key = str(today.year)
    return sum(enter(flow, [(d["_id"], key, None) for d in docs], now) for docs in _members({"$or": ranges}))


def sweep_and_run(now=None):
    """The sweep's job: enter who is due to enter, then run them."""
    if sweep(now):
        run_due()


# --- running -------------------------------------------------------------------------------------
def has_due(now=None):
    """Whether an enrolment of an active flow is due (or held by a dead worker's expired claim)."""
    now = now or utcnow()
    active = [f.pk for f in Flow.objects(status=ACTIVE).only("id")]
    return bool(active) and _enrolments().count_documents(
        {"status": RUNNING, "flow": {"$in": active}, "dueAt": {"$lte": now},
         "$or": [{"claimedAt": None}, {"claimedAt": {"$lt": now - _lease()}}]}, limit=1) > 0


def _lease():
    return timedelta(seconds=current_app.config["DISPATCH_CLAIM_LEASE_S"])


def claim(token, now, limit):
    """Claim up to ``limit`` due enrolments of active flows for ``token`` (each claim counts in
    ``tries``, which a move sets back to 0: a second try of a position may find its work done); their
    documents."""
    active = [f.pk for f in Flow.objects(status=ACTIVE).only("id")]
    if not active:
        return []
    free = {"status": RUNNING, "flow": {"$in": active}, "dueAt": {"$lte": now},
            "$or": [{"claimedAt": None}, {"claimedAt": {"$lt": now - _lease()}}]}
    ids = [doc["_id"] for doc in _enrolments().find(free, {"_id": 1}).sort("_id", 1).limit(limit)]
    if not ids:
        return []
    # the free ones in the range of ids read (an index range, not a list of ids to match one by one):
    # those, and any that came due in between
    _enrolments().update_many({"$and": [{"_id": {"$gte": ids[0], "$lte": ids[-1]}}, free]},
                              {"$set": {"claimedBy": token, "claimedAt": now}, "$inc": {"tries": 1}})
    return sorted(_enrolments().find({"claimedBy": token}), key=lambda doc: doc["_id"])  # run in id order


def run_due(now=None, limit=None):
    """Run every due enrolment of active flows (claimed in batches of ``FLOW_BATCH``), for at most
    :data:`RUN_BUDGET_S` (then another job takes over); returns how many enrolments ran."""
    started, total = utcnow(), 0
    limit = limit or current_app.config["FLOW_BATCH"]
    while True:
        token = uuid.uuid4().hex
        batch = claim(token, now or utcnow(), limit)
        if not batch:
            return total
        with _Runner(token, batch) as runner:
            for doc in batch:
                try:
                    runner.advance(doc)
                except ConnectionFailure:
                    raise  # the job is retried; the claims expire after their lease
                except Exception as exc:  # one enrolment's error never holds the others: it runs again later
                    log.exception("flow enrolment %s failed at step %s", doc["_id"], doc.get("position"))
                    runner.retry_later(doc, exc)
                runner.flush_if_due()
        total += len(batch)
        if (utcnow() - started).total_seconds() > RUN_BUDGET_S and now is None:
            kick(1)
            return total


def delivery_id(run_id):
    """A send step's delivery record id, the same every time that step of that enrolment runs (so is
    its Message-ID: a send repeated after a crash is the same message to the vendor)."""
    return ObjectId(hashlib.sha1(run_id.encode()).digest()[:12])


class _Runner:
    """Runs one claimed batch (in ``_id`` order): each enrolment's steps until it waits or finishes,
    writing what they did in set-based writes every ``ENGINE_FLUSH_S`` and when the batch ends
    (:meth:`flush`): the delivery records, the step runs, the enrolments' moves, each a bulk write. A
    crash before a flush leaves the enrolments since the last one claimed at their position: after the
    lease another worker runs them again, which repeats those sends (at most ``ENGINE_FLUSH_S`` of them,
    however large the batch) with their fixed Message-IDs and finds a branch's answer, written at once."""

    def __init__(self, token, batch=()):
        self.token, self.now = token, utcnow()
        self.vendor = current_app.extensions["engine"].vendor(current_app.config)
        self._sessions, self._session = ExitStack(), None
        self.zones, self.quiet, self.cap = {}, localtime.quiet_window(), frequency_cap()
        self.domain = current_app.config["MESSAGE_ID_DOMAIN"]
        self.base_url = unsubscribe.base_url()
        self.renewed, self.lease = utcnow(), _lease()
        self.segment_flows = None  # read once per batch, when an update step needs them
        self.versions = {}  # the steps of each flow version the batch follows
        self.deliveries, self.runs, self.moves = [], [], []
        self.flush_s, self.flushed = current_app.config["ENGINE_FLUSH_S"], time.monotonic()
        self.customers = _read_customers([doc["customer"] for doc in batch])
        self.consenting = {c["_id"] for c in consenting(list(self.customers.values()))}
        # a position tried before may have done its work: that run's records are read (rare: a crash)
        again = [doc["_id"] for doc in batch if doc.get("tries", 1) > 1]
        self.done = {run["_id"]: run for chunk in in_chunks(again)
                     for run in _runs().find({"enrolment": {"$in": chunk}})}

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, trace):
        try:
            if kind is None or not issubclass(kind, ConnectionFailure):
                self.flush()
        finally:
            self._sessions.close()

    def keep_claim(self):
        """Renew the batch's lease once half of it has gone (a long batch is not taken over by another
        worker while this one is still sending it)."""
        now = utcnow()
        if now - self.renewed > self.lease / 2:
            _enrolments().update_many({"claimedBy": self.token}, {"$set": {"claimedAt": now}})
            self.renewed = now

    def session(self):
        if self._session is None:
            self._session = self._sessions.enter_context(self.vendor.session())
        return self._session

    def advance(self, doc):
        """Run ``doc``'s steps from its position until it waits or finishes."""
        steps, start = _steps_of(doc, self.versions), doc.get("position", 0)
        index = start
        while index < len(steps):
            step = steps[index]
            run_id = f"{doc['_id']}:{index}"
            try:
                answer = STEP_RUNNERS[step["type"]](self, doc, index, step, run_id)
            except _CustomerGone:
                return self._end(doc, start, index, EXITED, "customer deleted")
            if isinstance(answer, Wait):
                return self._sleep(doc, start, index, answer)
            if answer == EXIT:
                return self._end(doc, start, index, EXITED, step.get("reason") or "exit step")
            index = index + 1 if answer == NEXT else answer
        return self._end(doc, start, index, COMPLETED, None)

    def record(self, doc, index, step, outcome, **fields):
        """A finished step's run (written with the batch)."""
        self.runs.append({"_id": f"{doc['_id']}:{index}", "enrolment": doc["_id"], "flow": doc["flow"],
                          "customer": doc["customer"], "step": index, "type": step["type"],
                          "startedAt": fields.pop("started", None) or self.now, "at": utcnow(),
                          "outcome": outcome, **{k: v for k, v in fields.items() if v is not None}})

    def _update(self, doc, start, changes):
        self.moves.append((doc["_id"], start, changes))

    def _sleep(self, doc, start, index, wait):
        if wait.reason in ("quiet_hours", "vendor_unavailable"):
            metrics.DEFERRED.labels(wait.reason).inc()
        fields = {"dueAt": wait.until, "position": index}
        if wait.reason == "wait":
            fields["wait"] = {"step": index, "until": wait.until}
        if index != start:
            fields["tries"] = 0
        unset = {"claimedBy": "", "claimedAt": ""}
        if wait.reason != "wait":
            unset["wait"] = ""
        self._update(doc, start, {"$set": fields, "$unset": unset})

    def _end(self, doc, start, index, status, reason):
        fields = {"status": status, "finishedAt": self.now, "position": index}
        if reason:
            fields["exitReason"] = reason
        self._update(doc, start, {"$set": fields, "$unset": {"claimedBy": "", "claimedAt": "", "dueAt": "",
                                                             "wait": ""}})

    def retry_later(self, doc, exc):
        """A step raised: the enrolment runs again after :data:`ERROR_RETRY` (nothing of it is kept)."""
        self.runs = [run for run in self.runs if run["enrolment"] != doc["_id"]]
        self.deliveries = [d for d in self.deliveries if d["enrolment"] != doc["_id"]]
        self.moves = [move for move in self.moves if move[0] != doc["_id"]]
        _enrolments().update_one({"_id": doc["_id"], "claimedBy": self.token}, {
            "$set": {"dueAt": utcnow() + ERROR_RETRY, "lastError": f"{type(exc).__name__}: {exc}"[:500]},
            "$unset": {"claimedBy": "", "claimedAt": ""}})

    def flush(self):
        """Write the batch's records, then its step runs, then the enrolments' moves (in that order: an
        enrolment moves only once what it did is recorded)."""
        handed = failed = 0
        if self.deliveries:
            fresh = _insert_new(Delivery._get_collection(), self.deliveries)
            handed = sum(1 for i, d in enumerate(self.deliveries) if i in fresh and d["status"] == SENT)
            failed = sum(1 for i, d in enumerate(self.deliveries) if i in fresh and d["status"] == FAILED)
        if self.runs:
            _insert_new(_runs(), self.runs)
        if self.moves:
            self._move_all()
        if handed:
            metrics.MESSAGES.labels("handed_off").inc(handed)
        if failed:
            metrics.MESSAGES.labels("failed").inc(failed)
        self.deliveries, self.runs, self.moves = [], [], []
        self.flushed = time.monotonic()

    def flush_if_due(self):
        """Record what ran so far once ``ENGINE_FLUSH_S`` has passed since the last flush (a crash then
        repeats no more than that, whatever the batch's size)."""
        if (self.deliveries or self.runs or self.moves) and time.monotonic() - self.flushed >= self.flush_s:
            self.flush()

    def _move_all(self):
        """The enrolments' moves, each conditional on this claim and the position it started from.
        The batch runs in ``_id`` order and every move, like an error's retry, gives up the claim, so
        the claimed enrolments at a position within the ids this flush moves are exactly those it moves
        from there: alike moves of all of them are one ``update_many`` over that range (a flush whose
        enrolments all completed: one write); others are one write each."""
        groups = {}
        for ident, start, changes in self.moves:
            groups.setdefault((start, repr(sorted(changes.items()))), (changes, []))[1].append(ident)
        spans = {key: (min(idents), max(idents)) for key, (_, idents) in groups.items()}
        writes = []
        for (start, kind), (changes, idents) in groups.items():
            where = {"claimedBy": self.token, "position": start, "status": RUNNING}
            low, high = spans[(start, kind)]
            if not any(other_start == start and other_kind != kind and other_low <= high and low <= other_high
                       for (other_start, other_kind), (other_low, other_high) in spans.items()):
                writes.append(UpdateMany({**where, "_id": {"$gte": low, "$lte": high}}, changes))
            else:
                writes.extend(UpdateOne({**where, "_id": ident}, changes) for ident in idents)
        _enrolments().bulk_write(writes, ordered=False)

    def customer(self, doc):
        """The enrolment's customer as read for the batch (read again after an update step changed it)."""
        pk = doc["customer"]
        if pk not in self.customers:
            found = Customer._get_collection().find_one({"_id": pk}, CUSTOMER_PROJECTION)
            if found is None:
                raise _CustomerGone()
            self.customers[pk] = found
            if consenting([found]):
                self.consenting.add(pk)
            else:
                self.consenting.discard(pk)
        return self.customers[pk]

    def changed(self, pk):
        """An update step changed the customer: forget the copy; segment flows may take them now."""
        self.customers.pop(pk, None)
        if self.segment_flows is None:
            self.segment_flows = _active("segment.entered")
        kick(_segment_entries([pk], flows=self.segment_flows))

    def wait_end(self, doc, step):
        if "until" not in step:
            return self.now + timedelta(days=step.get("days", 0), hours=step.get("hours", 0),
                                        minutes=step.get("minutes", 0))
        zone = localtime.zone_of(self.customer(doc), self.zones)
        hour, minute = localtime.parse(step["until"]["time"])
        allowed = {WEEKDAYS.index(day) for day in step["until"].get("weekdays") or WEEKDAYS}
        moment = self.now
        for _ in range(8):
            candidate = localtime.next_wall_time(moment, hour, minute, zone)
            if candidate.replace(tzinfo=timezone.utc).astimezone(zone).weekday() in allowed:
                return candidate
            moment = candidate + timedelta(minutes=1)
        raise AssertionError("a weekday recurs within a week")


def _insert_new(collection, docs):
    """Insert ``docs``; the indexes of those inserted (one already there, from a try that crashed after
    writing it, is left as it was)."""
    try:
        collection.insert_many(docs, ordered=False)
        return set(range(len(docs)))
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return set(range(len(docs))) - {e["index"] for e in errors}


def _read_customers(pks):
    """``{id: customer}`` of a batch: a run of ``_id`` when they are close together (entered by one
    bulk write: one range read, as the campaign sender does), else by id."""
    wanted = set(pks)
    if not wanted:
        return {}
    collection = Customer._get_collection()
    if len(wanted) == 1:  # one customer (an order's, an event's): by its id
        return {c["_id"]: c for c in collection.find({"_id": next(iter(wanted))}, CUSTOMER_PROJECTION)}
    ranged = collection.find({"_id": {"$gte": min(wanted), "$lte": max(wanted)}}, CUSTOMER_PROJECTION
                             ).sort("_id", 1).limit(4 * len(wanted))
    # the range's first 4n documents hold a run of ids; the rest (spread out) are read by id
    found = {c["_id"]: c for c in ranged if c["_id"] in wanted}
    missing = [pk for pk in wanted if pk not in found]
    found.update((c["_id"], c) for chunk in in_chunks(missing)
                 for c in collection.find({"_id": {"$in": chunk}}, CUSTOMER_PROJECTION))
    return found


class _CustomerGone(Exception):
    """The enrolment's customer was deleted."""


def _wait(runner, doc, index, step, run_id):
    held = doc.get("wait") or {}
    until = held["until"] if held.get("step") == index and doc.get("position") == index else runner.wait_end(doc, step)
    if until > runner.now:
        return Wait(until, "wait")
    runner.record(doc, index, step, "waited", until=until)
    return NEXT


def _branch(runner, doc, index, step, run_id):
    """Evaluated once: the answer is written at once (not with the batch), so a run again after a crash
    takes the same path even if the customer changed meanwhile."""
    answer = (runner.done.get(run_id) or {}).get("outcome")
    if answer is None:
        runner.customer(doc)  # a deleted customer exits rather than take the "no" path
        try:
            query = compile_rules(step["rules"], step.get("logicalOperator", "AND"), fields=rule_fields())
            matched = bool(Customer._get_collection().count_documents({"$and": [{"_id": doc["customer"]}, query]}))
        except RuleError as exc:  # an attribute it names was deleted since: the customer does not match
            matched = False
            log.warning("flow %s step %d: rules no longer compile (%s): taking else", doc["flow"], index, exc)
        run = {"_id": run_id, "enrolment": doc["_id"], "flow": doc["flow"], "customer": doc["customer"],
               "step": index, "type": "branch", "startedAt": runner.now, "at": utcnow(),
               "outcome": "yes" if matched else "no"}
        try:
            _runs().insert_one(run)
            answer = run["outcome"]
        except DuplicateKeyError:  # decided by an earlier try
            answer = _runs().find_one({"_id": run_id}, {"outcome": 1})["outcome"]
    return step.get("then", NEXT) if answer == "yes" else step.get("else", EXIT)


def _update(runner, doc, index, step, run_id):
    if run_id not in runner.done:
        runner.customer(doc)
        collection, pk = Customer._get_collection(), doc["customer"]
        changes = {"$set": {"updatedAt": utcnow()}}
        if step.get("addTags"):
            changes["$addToSet"] = {"tags": {"$each": step["addTags"]}}
        for key, value in (step.get("attributes") or {}).items():
            if value is None:
                changes.setdefault("$unset", {})[f"attributes.{key}"] = ""
            else:
                changes["$set"][f"attributes.{key}"] = value
        collection.update_one({"_id": pk}, changes)
        if step.get("removeTags"):  # not in the same update: $addToSet and $pull on one field conflict
            collection.update_one({"_id": pk}, {"$pull": {"tags": {"$in": step["removeTags"]}}})
        runner.record(doc, index, step, "updated")
        runner.changed(pk)
    return NEXT


def _exit(runner, doc, index, step, run_id):
    runner.record(doc, index, step, "exited")
    return EXIT


def _send(runner, doc, index, step, run_id):
    if run_id in runner.done:
        return NEXT
    record_id = delivery_id(run_id)
    if doc.get("tries", 1) > 1:  # tried before: its record (the step's run) may be written already
        if Delivery._get_collection().find_one({"_id": record_id}, {"_id": 1}) is not None:
            return NEXT
    customer = runner.customer(doc)
    now = utcnow()
    if customer["_id"] not in runner.consenting:
        runner.record(doc, index, step, "suppressed", detail="unsubscribed or on the suppression list")
        return NEXT
    if runner.quiet is not None:
        until = localtime.quiet_until(now, localtime.zone_of(customer, runner.zones), runner.quiet)
        if until is not None:
            return Wait(until, "quiet_hours")
    if runner.cap and not doc.get("transactional") and not reserve(customer["_id"], record_id, now, runner.cap):
        metrics.MESSAGES.labels("capped").inc()
        runner.record(doc, index, step, "capped", detail=describe(runner.cap))
        return NEXT
    record = {"_id": record_id, "campaign": record_id, "customer": customer["_id"],
              "email": customer.get("email") or "", "attempts": 1, "createdAt": now,
              "vendorMessageId": f"<{record_id}@{runner.domain}>", "flow": doc["flow"], "enrolment": doc["_id"],
              "flowVersion": doc.get("version"), "flowStep": index}
    if doc.get("transactional"):
        record["transactional"] = True
    outcome = _hand_off(runner, doc, step, record, customer)
    if isinstance(outcome, Wait):
        return outcome
    runner.deliveries.append(record)  # the step's run: sent (it has ``sentAt``) or failed
    return NEXT


def _hand_off(runner, doc, step, record, customer):
    """Render and send ``record`` (completing it: SENT or FAILED); "sent" or "failed", or a Wait when the
    vendor is down (nothing recorded: the step runs again then, with the same Message-ID)."""
    runner.keep_claim()
    # the links name the record as its campaign (a flow message's record is its own one-message send);
    # tracking tokens say FLOW_MESSAGE where a campaign's name its A/B variant (tracking reads the step)
    record_id, now = record["_id"], utcnow()
    unsubscribe_url = unsubscribe.url(customer["_id"], record_id)
    try:
        built = content.build(step, customer, unsubscribe_url, *tracking.message_urls(
            runner.base_url, record_id, record_id, now, tracking.FLOW_MESSAGE))
        message = OutgoingMessage(str(record["_id"]), record["vendorMessageId"], record["email"], built.subject,
                                  built.text, unsubscribe_url, html=built.html, from_name=step.get("fromName"),
                                  reply_to=step.get("replyTo"))
        runner.session().send(message)
    except VendorUnavailable as exc:
        runner._session = None
        runner._sessions.close()
        log.warning("flow %s: vendor unavailable for %s (%s): again in a minute", doc["flow"], record["_id"], exc)
        return Wait(now + VENDOR_RETRY, "vendor_unavailable")
    except (VendorRejected, Exception) as exc:  # one recipient's failure never stops the flow
        if not isinstance(exc, VendorRejected):
            log.exception("flow %s: sending %s failed", doc["flow"], record["_id"])
        record.update(status=FAILED, failedAt=now, error=f"{type(exc).__name__}: {exc}"[:500])
        return "failed"
    record.update(status=SENT, sentAt=now)
    return "sent"


STEP_RUNNERS = {"wait": _wait, "branch": _branch, "send": _send, "update": _update, "exit": _exit}


# --- what a flow holds ---------------------------------------------------------------------------
def stats(flow, now=None):
    """Entered, running, waiting, finished, sent, capped, opened, clicked, converted and revenue, and per
    step how many reached it, wait in it, finished it by outcome, opened and clicked its message: counted
    by the database."""
    now = now or utcnow()
    enrolments, pk = _enrolments(), flow.pk
    by_status = {row["_id"]: row["n"] for row in enrolments.aggregate([
        {"$match": {"flow": pk}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}])}
    waiting = {row["_id"]: row["n"] for row in enrolments.aggregate([
        {"$match": {"flow": pk, "status": RUNNING, "dueAt": {"$gt": now}}},
        {"$group": {"_id": "$position", "n": {"$sum": 1}}}])}
    outcomes = {}
    for row in _runs().aggregate([{"$match": {"flow": pk}},
                                  {"$group": {"_id": {"step": "$step", "outcome": "$outcome"}, "n": {"$sum": 1}}}]):
        outcomes.setdefault(row["_id"]["step"], {})[row["_id"].get("outcome")] = row["n"]
    converted = list(enrolments.aggregate([
        {"$match": {"flow": pk, "convertedAt": {"$ne": None}}},
        {"$group": {"_id": None, "n": {"$sum": 1}, "revenue": {"$sum": "$conversion.amount"}}}]))
    handed = {"$ifNull": ["$sentAt", False]}
    engaged = {row["_id"]: row for row in Delivery._get_collection().aggregate([
        {"$match": {"flow": pk}},
        {"$group": {"_id": "$flowStep", "sent": {"$sum": {"$cond": [handed, 1, 0]}},
                    "failed": {"$sum": {"$cond": [handed, 0, 1]}},
                    "opened": {"$sum": {"$cond": [{"$gt": ["$humanOpens", 0]}, 1, 0]}},
                    "clicked": {"$sum": {"$cond": [{"$gt": ["$humanClicks", 0]}, 1, 0]}}}}])}
    for index, row in engaged.items():  # a send step handed off or failed: its delivery records
        for outcome in ("sent", "failed"):
            if row[outcome]:
                outcomes.setdefault(index, {})[outcome] = row[outcome]
    steps = []
    for index, step in enumerate(flow.steps):
        counts = outcomes.get(index, {})
        finished = {outcome: n for outcome, n in counts.items() if outcome is not None}
        steps.append({"step": index, "type": step["type"], "reached": sum(counts.values()),
                      "waiting": waiting.get(index, 0), "outcomes": finished,
                      "opened": engaged.get(index, {}).get("opened", 0),
                      "clicked": engaged.get(index, {}).get("clicked", 0)})
    sent = sum(s["outcomes"].get("sent", 0) for s in steps)
    return {"entered": sum(by_status.values()), "running": by_status.get(RUNNING, 0),
            "waiting": sum(waiting.values()), "completed": by_status.get(COMPLETED, 0),
            "exited": by_status.get(EXITED, 0), "sent": sent,
            "capped": sum(s["outcomes"].get("capped", 0) for s in steps),
            "opened": sum(row["opened"] for row in engaged.values()),
            "clicked": sum(row["clicked"] for row in engaged.values()),
            "converted": converted[0]["n"] if converted else 0,
            "revenue": round(converted[0]["revenue"], 2) if converted else 0.0,
            "by_status": {status: by_status.get(status, 0) for status in (RUNNING, COMPLETED, EXITED)},
            "steps": steps}


def end_all(flow_pk, reason):
    """Exit every enrolment still inside the flow (it was archived)."""
    return _enrolments().update_many(
        {"flow": flow_pk, "status": RUNNING},
        {"$set": {"status": EXITED, "exitReason": reason, "finishedAt": utcnow()},
         "$unset": {"dueAt": "", "claimedBy": "", "claimedAt": ""}}).modified_count


def forget_customer(customer_pk):
    """Delete a customer's enrolments and step runs (the customer is being erased)."""
    _enrolments().delete_many({"customer": customer_pk})
    _runs().delete_many({"customer": customer_pk})
    forget(customer_pk)


def customer_steps(customer_pk, limit):
    """``(count, newest first)`` of a customer's finished flow steps, at most ``limit``: the step runs
    and, for a send handed off or failed, its delivery record in a run's shape."""
    query, sent = {"customer": customer_pk}, {"customer": customer_pk, "flow": {"$ne": None}}
    rows = list(_runs().find(query).sort([("startedAt", -1), ("_id", -1)]).limit(limit))
    deliveries = Delivery._get_collection()
    rows.extend({"_id": f"{record['enrolment']}:{record['flowStep']}", "flow": record["flow"],
                 "step": record["flowStep"], "type": "send", "startedAt": record["createdAt"],
                 "outcome": "sent" if record.get("sentAt") else "failed", "delivery": record["_id"]}
                for record in deliveries.find(sent, {"enrolment": 1, "flow": 1, "flowStep": 1, "createdAt": 1,
                                                     "sentAt": 1}).sort([("createdAt", -1), ("_id", -1)]).limit(limit))
    rows.sort(key=lambda row: (row["startedAt"], row["_id"]), reverse=True)
    return _runs().count_documents(query) + deliveries.count_documents(sent), rows[:limit]
