"""Sending one batch: claim it, send its PENDING records through the vendor, record every outcome.

- **Claim**: one small claim document with a lease, so two workers never send the same batch and a
  dead worker's claim expires (:func:`engine.store.claim`). A batch delivered twice (the broker
  redelivers unacknowledged tasks) finds nothing PENDING the second time: nobody is sent twice.
- **Control**: the campaign's state is re-read when it is older than ``ENGINE_CONTROL_CHECK_S``
  (checked before every message and during every wait), so pause and cancel stop a running batch
  within that time or one message, whichever is later, at one small read per interval however fast
  it sends; what is left stays PENDING for ``resume``.
- **Pacing**: ``messagesPerSecond`` is shared by every worker through a reserved window per batch.
- **Faults**: a temporary vendor error is retried for that recipient with exponential backoff
  (``VENDOR_RETRY_BASE_S`` doubling up to ``VENDOR_RETRY_MAX_S``, ``VENDOR_MAX_ATTEMPTS`` tries); past
  that the recipient is FAILED with the reason and the next recipient gets one try: if that fails too
  the vendor is down, the batch stops and the campaign is ``failed`` with the reason (PENDING records
  wait for ``retry-failed``). Any other exception fails that one recipient and the batch goes on.
- **Content** is rendered per recipient as it is sent (:func:`engine.content.build`), from the
  campaign and the customer's data at that moment (one read per ``MONGO_MAX_IN`` recipients), with
  its tracking URLs and unsubscribe link; a customer deleted since planning is not sent to (FAILED,
  ``customer deleted``), and one whose data cannot be rendered fails alone (``render: …``).
- **Outcomes** are written in set-based bulk writes every ``ENGINE_FLUSH_S`` (and at the end), with
  ``sentAt`` the time of the first hand-off in the chunk: never later than the real one.
"""
import logging
import time
import uuid
from contextlib import ExitStack
from datetime import timedelta

from flask import current_app

import metrics
from engine import cap, control, content, localtime, store, tracking
from engine.audience import audience_query
from engine.templates import CUSTOMER_FIELDS
from engine.vendors import OutgoingMessage, VendorRejected, VendorUnavailable
from models import Campaign, Customer
from models.base import utcnow
from models.campaign import AB_WAITING, SENDING
from models.db import in_chunks
from services import unsubscribe

log = logging.getLogger(__name__)
DONE, HELD, STOPPED, VENDOR_DOWN = "done", "held", "stopped", "vendor down"
MIN_RATE, MAX_RATE = 0.1, 10_000


def lease_cutoff(now):
    """Claims taken before this have expired."""
    return now - timedelta(seconds=current_app.config["DISPATCH_CLAIM_LEASE_S"])


def deliver_batch(campaign_id, token, worker=None):
    """Send one batch; returns DONE, HELD (another worker has it: come back after its lease),
    STOPPED (the campaign is not sending) or VENDOR_DOWN (the campaign was failed)."""
    campaign = Campaign.objects(pk=campaign_id).exclude("rules", "plan_cursor").first()
    if campaign is None or campaign.status != SENDING:
        return STOPPED
    worker = worker or uuid.uuid4().hex
    now = utcnow()
    records = store.claim(token, worker, now, lease_cutoff(now), current_app.config["DISPATCH_BATCH_SIZE"])
    if records is None:
        return HELD
    try:
        outcome = _Batch(campaign, token, records).send() if records else DONE
    finally:
        store.release(token, worker)
    control.finish_if_done(campaign.pk)
    return outcome


class Control:
    """The campaign's state, re-read when stale; waits that end early when it stops sending."""

    def __init__(self, campaign_pk, every_s):
        self.campaign_pk, self.every_s = campaign_pk, every_s
        self.checked, self.status = time.monotonic(), SENDING
        self.stopping = current_app.extensions["engine"].stopping

    def sending(self):
        """True while the campaign is still sending (re-read if older than ``every_s``) and this
        process's engine is not stopping."""
        if self.stopping.is_set():
            return False
        if time.monotonic() - self.checked >= self.every_s:
            current = Campaign.objects(pk=self.campaign_pk).only("status").first()
            self.status = current.status if current else None
            self.checked = time.monotonic()
        return self.status == SENDING

    def wait(self, seconds):
        """Sleep ``seconds`` in slices of ``every_s``; False as soon as the campaign stopped (known
        within ``every_s``: a short pacing wait does not cost a read)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self.every_s))
            if not self.sending():
                return False
        return True


class _Outcomes:
    """Outcomes buffered and written every ``flush_s``; ``sentAt`` is each chunk's first hand-off."""

    def __init__(self, token, flush_s, keys):
        self.token, self.flush_s, self.keys = token, flush_s, keys  # keys: {record id: tally key}
        self._reset()

    def _reset(self):
        self.attempted, self.failed, self.first_at, self.started = [], {}, None, time.monotonic()
        self.deferrals = []

    def deferred(self, record_id, until):
        """The record is not sent now: its recipient's quiet hours last ``until``."""
        self.deferrals.append((record_id, until))

    def handed_off(self, record_id):
        """The vendor took the record's message."""
        self._add(record_id)

    def refused(self, record_id, reason):
        """The record failed for ``reason``."""
        self.failed.setdefault(reason[:200], []).append(record_id)
        self._add(record_id)

    def _add(self, record_id):
        if self.first_at is None:
            self.first_at = utcnow()
        self.attempted.append(record_id)
        if time.monotonic() - self.started >= self.flush_s:
            self.flush()

    def flush(self):
        """Write what is buffered: deferrals first (they stay PENDING, due later), then outcomes."""
        if self.deferrals:
            metrics.DEFERRED.labels("quiet_hours").inc(store.defer(self.deferrals))
        sent, failed = store.record_outcomes(self.token, self.attempted, self.first_at, self.failed, utcnow(),
                                             self.keys)
        for outcome, count in ((metrics.HANDED_OFF, sent), (metrics.FAILED, failed)):
            if count:
                metrics.MESSAGES.labels(outcome).inc(count)
        self._reset()


class _Batch:
    def __init__(self, campaign, token, records):
        config = current_app.config
        self.campaign, self.records = campaign, records
        self.control = Control(campaign.pk, config["ENGINE_CONTROL_CHECK_S"])
        keys = {r["_id"]: (campaign.pk, r.get("variant"), bool(r.get("testGroup"))) for r in records}
        self.outcomes = _Outcomes(token, config["ENGINE_FLUSH_S"], keys)
        self.vendor = current_app.extensions["engine"].vendor(config)
        self.max_attempts = config["VENDOR_MAX_ATTEMPTS"]
        self.base_s, self.max_s = config["VENDOR_RETRY_BASE_S"], config["VENDOR_RETRY_MAX_S"]
        self.contents = {}  # by A/B variant; the vendor makes header values safe (engine.vendors.header_safe)
        self.base_url = unsubscribe.base_url()
        self.customers = _customers([record["customer"] for record in records], campaign)
        self.quiet, self.zones = localtime.quiet_window(), {}
        self.cap = cap.frequency_cap()
        self._sessions = ExitStack()
        self._session = None
        self.last_error = None

    def send(self):
        start, rate = _reserve_send_window(self.campaign, len(self.records))
        probing = False  # the previous recipient used up its retries: one try decides
        try:
            for index, record in enumerate(self.records):
                if rate:
                    delay = (start + timedelta(seconds=index / rate) - utcnow()).total_seconds()
                    if delay > 0:
                        metrics.DEFERRED.labels("rate_limit").inc()
                        if not self.control.wait(delay):
                            return STOPPED
                if not self.control.sending():
                    return STOPPED
                if self._in_quiet_hours(record):
                    continue
                if self.cap and not cap.reserve(record["customer"], record["_id"], utcnow(), self.cap):
                    # FREQUENCY_CAP: the customer's slots are taken: not sent, FAILED with the reason
                    metrics.MESSAGES.labels("capped").inc()
                    self.outcomes.refused(record["_id"], cap.describe(self.cap))
                    continue
                result = self._send_one(record, 1 if probing else self.max_attempts)
                if result == STOPPED:
                    return STOPPED
                if result == VENDOR_DOWN:
                    if probing:
                        control.fail(self.campaign.pk, f"Vendor unavailable: {self.last_error}")
                        return VENDOR_DOWN
                    probing = True
                else:
                    probing = False
            return DONE
        finally:
            self.outcomes.flush()
            self._close()

    def _send_one(self, record, attempts):
        """Send one record, retrying temporary errors; DONE, STOPPED or VENDOR_DOWN. Only the vendor
        call is guarded: a failure to record an outcome (the database) is not the recipient's fault
        and propagates (the task is retried; the sweep re-queues the batch)."""
        message = self._message(record)
        if isinstance(message, str):
            self.outcomes.refused(record["_id"], message)
            return DONE
        for attempt in range(1, attempts + 1):
            try:
                self._open().send(message)
            except VendorRejected as exc:
                self.outcomes.refused(record["_id"], str(exc))
                return DONE
            except VendorUnavailable as exc:
                self.last_error = str(exc)
                self._close()  # a broken connection is opened again for the next try
                if attempt == attempts:
                    if attempts > 1:  # a probe's recipient stays PENDING: its retries are not spent
                        self.outcomes.refused(
                            record["_id"], f"vendor unavailable after {attempt} attempts: {exc}")
                    return VENDOR_DOWN
                backoff = min(self.max_s, self.base_s * 2 ** (attempt - 1))
                metrics.DEFERRED.labels("vendor_unavailable").inc()
                log.warning("vendor unavailable for %s (attempt %d of %d): %s; retrying in %.1fs",
                            record["_id"], attempt, attempts, exc, backoff)
                if not self.control.wait(backoff):
                    return STOPPED
                continue
            except Exception as exc:  # one bad recipient never strands the campaign
                log.exception("sending delivery %s failed", record["_id"])
                self.outcomes.refused(record["_id"], f"{type(exc).__name__}: {exc}")
                return DONE
            self.outcomes.handed_off(record["_id"])
            return DONE
        return DONE

    def _in_quiet_hours(self, record):
        """True (and the record deferred to the end of them) when it is quiet hours where its
        recipient is (``QUIET_HOURS`` in their own zone)."""
        customer = self.customers.get(record["customer"])
        if self.quiet is None or customer is None:
            return False
        until = localtime.quiet_until(utcnow(), localtime.zone_of(customer, self.zones), self.quiet)
        if until is None:
            return False
        self.outcomes.deferred(record["_id"], until)
        return True

    def _message(self, record):
        """The record's :class:`OutgoingMessage`, or why it cannot be sent."""
        customer = self.customers.get(record["customer"])
        if customer is None:
            return "customer deleted"
        campaign_pk, now, base, variant = self.campaign.pk, utcnow(), self.base_url, record.get("variant")
        if variant not in self.contents:
            self.contents[variant] = self.campaign.content(variant)

        unsubscribe_url = unsubscribe.url(record["customer"], campaign_pk)
        try:
            built = content.build(self.contents[variant], customer, unsubscribe_url,
                                  *tracking.message_urls(base, record["_id"], campaign_pk, now, variant or 0))
        except Exception as exc:  # one customer's data must not stop the campaign
            log.warning("campaign %s: cannot render the message for customer %s: %s",
                        campaign_pk, record["customer"], exc)
            return f"render: {type(exc).__name__}: {exc}"
        return OutgoingMessage(str(record["_id"]), record["vendorMessageId"], record["email"], built.subject,
                               built.text, unsubscribe_url, html=built.html, from_name=self.campaign.from_name,
                               reply_to=self.campaign.reply_to)

    def _open(self):
        if self._session is None:
            self._session = self._sessions.enter_context(self.vendor.session())
        return self._session

    def _close(self):
        self._session = None
        self._sessions.close()


def _customers(ids, campaign):
    """``{id: customer}`` with the fields messages use.

    A batch's recipients are a run of the campaign's audience in ``_id`` order (the planner reads it
    so), so they are read back as that run: the audience's members from the first id to the last, one
    query of the planner's own shape (the ``_id`` index, as the planner's read of that batch used it),
    not a ``$in`` of up to 2,000 ids (2,000 index look-ups on MongoDB; a scan of the collection per
    value on the stand-in). Whoever the run did not return (a member who left the audience since it
    was planned, a retry's scattered records) is read by id; a deleted customer is simply absent.
    """
    wanted = set(ids)
    if not wanted:
        return {}
    collection, projection = Customer._get_collection(), dict.fromkeys((*CUSTOMER_FIELDS, "timezone"), 1)
    found = {}
    try:
        run = {"$and": [audience_query(campaign), {"_id": {"$gte": min(wanted), "$lte": max(wanted)}}]}
    except LookupError:  # its segment is gone: by id only
        run = None
    if run is not None:
        found = {doc["_id"]: doc for doc in collection.find(run, projection) if doc["_id"] in wanted}
    missing = [i for i in wanted if i not in found]
    found.update((doc["_id"], doc) for chunk in in_chunks(missing)
                 for doc in collection.find({"_id": {"$in": chunk}}, projection))
    return found


def _reserve_send_window(campaign, count):
    """Start time for sending ``count`` messages at the campaign's rate, shared by all workers."""
    rate = campaign.messages_per_second
    if not rate:
        return None, None
    rate = min(max(rate, MIN_RATE), MAX_RATE)
    current = Campaign.objects(pk=campaign.pk).only("rate_next_at").first()
    while current is not None:  # compare-and-set on rateNextAt: each batch gets its own slice of time
        now = utcnow()
        previous = current.rate_next_at
        start = max(previous or now, now)
        end = start + timedelta(seconds=count / rate)
        if Campaign.objects(pk=campaign.pk, rate_next_at=previous).update_one(set__rate_next_at=end):
            return start, rate
        current.reload("rate_next_at")
    return None, None


def stalled_work(now=None):
    """``(campaign ids to plan again, {campaign id: [batch tokens to deliver again]})``.

    A batch is stalled when it has PENDING records older than the lease and no live claim (its task
    was lost, or its worker died). A plan is stalled when a sending campaign has not finished planning
    and has not moved for a lease. Re-queuing is safe: the unique index and the claims keep every
    recipient exactly-once.
    """
    now = now or utcnow()
    cutoff = lease_cutoff(now)
    sending = list(Campaign.objects(status=SENDING).only("id", "planned", "updated_at", "ab_test"))
    replan = [str(c.pk) for c in sending if c.planned is None and c.updated_at and c.updated_at < cutoff
              and (c.ab_test or {}).get("phase") != AB_WAITING]  # a test waiting for its decision is not stalled
    batches = {}
    for campaign in sending:
        lost = store.lost_batches(campaign.pk, cutoff, now)
        if lost:
            batches[str(campaign.pk)] = lost
    return replan, batches


TEST_PREFIX = "[Test] "


def send_tests(campaign, recipients):
    """Send ``campaign``'s message to ``recipients`` (``[(address, customer data)]``) now, marked as a
    test: ``[Test]`` subject, untracked, no delivery record, no receipt, counted nowhere. One result
    per address: ``{email, sent, error}``."""
    config = current_app.config
    vendor = current_app.extensions["engine"].vendor(config)
    fields = campaign.content()
    results = []
    with ExitStack() as stack:
        session = None
        for address, customer in recipients:
            try:
                built = content.build(fields, customer, unsubscribe.example_url("test"))
            except Exception as exc:
                results.append({"email": address, "sent": False, "error": f"render: {type(exc).__name__}: {exc}"})
                continue
            message = OutgoingMessage("", f"<test-{uuid.uuid4().hex}@{config['MESSAGE_ID_DOMAIN']}>", address,
                                      TEST_PREFIX + built.subject, built.text, html=built.html,
                                      from_name=campaign.from_name, reply_to=campaign.reply_to, test=True)
            try:
                if session is None:
                    session = stack.enter_context(vendor.session())
                session.send(message)
            except (VendorRejected, VendorUnavailable) as exc:
                results.append({"email": address, "sent": False, "error": str(exc)[:200]})
                continue
            results.append({"email": address, "sent": True, "error": None})
    return results
