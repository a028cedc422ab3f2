"""Messaging vendors: who actually sends a campaign's messages.

- ``simulated`` (default): accepts every message, then reports each outcome (DELIVERED, or FAILED
  with a reason, at ``VENDOR_SUCCESS_RATE``; hard and soft bounces and complaints at their own
  rates) back to ``POST /api/delivery-receipts`` a little later,
  signed like a real provider's webhook. Outcomes are a pure function of ``VENDOR_SEED`` and the
  message, so runs are reproducible.
- ``smtp``: sends email through ``SMTP_HOST``; a recipient the server refuses for good (5xx) is
  FAILED at once, a temporary refusal (4xx), a timeout or a lost connection is retried by the sender.

Vendors are per app (``app.extensions["engine"]``), so two apps in one process never share one.
"""
import collections
import hashlib
import hmac
import json
import logging
import queue
import random
import smtplib
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

import requests
from flask import current_app

from models.base import utcnow
from models.db import in_chunks

log = logging.getLogger(__name__)
FAILURE_REASONS = ("mailbox_full", "invalid_address", "blocked_by_recipient", "spam_filtered")
# RFC 5322's hard limit: a long link in List-Unsubscribe stays one readable line, not encoded words.
SMTP_POLICY = email_policy.SMTP.clone(max_line_length=998)
SIGNATURE_HEADER = "X-Webhook-Signature"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to one recipient."""

    delivery_id: str
    message_id: str
    to: str
    subject: str
    body: str  # the text part
    unsubscribe_url: str | None = None  # sent as RFC 8058 List-Unsubscribe (one click)
    html: str | None = None  # with it, the message is multipart/alternative (text, then HTML)
    from_name: str | None = None
    reply_to: str | None = None
    test: bool = False  # a test send: no delivery record, no receipt


class VendorRejected(Exception):
    """The vendor refused this message for good (the delivery becomes FAILED)."""


class VendorUnavailable(Exception):
    """The vendor could not take this message now (unreachable, timed out, temporary refusal):
    nothing was sent; the sender retries with backoff."""


def header_safe(text):
    """A header value without CR, LF or other control characters (no header injection)."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def sign(secret, timestamp, body):
    """The webhook signature: ``sha256=`` HMAC of ``"<timestamp>.<raw body>"``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class ReceiptReporter:
    """The simulated vendor's webhook client, as durable as a real provider's: receipts are kept in
    its outbox (the ``simulated_vendor_outbox`` collection) until the webhook accepts them (2xx).

    A background thread moves reported receipts to the outbox (one insert per tick, not one per
    message), then posts the due ones in batches of ``max_batch``. A batch the webhook does not
    accept (unreachable, time-out, any non-2xx answer) is tried again later, the wait doubling from
    ``delay_s`` up to ``retry_max_s``, for ``give_up_s`` (as real vendors retry for days); only then
    is it dropped, with an error in the log. Several processes may share one outbox: each claims a
    batch with a lease before posting it, so two never post the same receipts at once (a receipt
    posted twice after a lost answer is harmless: receipts apply idempotently). :meth:`pump` does one
    round and takes the time, so tests travel in time instead of waiting.
    """

    COLLECTION = "simulated_vendor_outbox"
    LEASE_S = 120  # longer than one post may take (its time-out)
    POST_TIMEOUT_S = 30

    def __init__(self, app, url, secret, delay_s=0.2, retry_max_s=600, give_up_s=72 * 3600, max_batch=500):
        self.app, self.url, self.secret = app, url, secret
        self.delay_s, self.retry_max_s, self.give_up_s, self.max_batch = delay_s, retry_max_s, give_up_s, max_batch
        self._queue, self._indexed, self._stopped = queue.Queue(), None, threading.Event()
        self._thread = threading.Thread(target=self._run, name="receipt-reporter", daemon=True)
        self._thread.start()

    def report(self, receipt):
        """Queue one receipt (moved to the outbox within ``delay_s``)."""
        self._queue.put(receipt)

    def _outbox(self):
        from mongoengine.connection import get_db

        outbox = get_db()[self.COLLECTION]
        if self._indexed is not outbox.database:  # once per connection
            outbox.create_index([("to", 1), ("dueAt", 1)])
            outbox.create_index("claim", sparse=True)
            self._indexed = outbox.database
        return outbox

    def stop(self):
        """Stop posting (what is in the outbox stays there for the next reporter of this webhook)."""
        self._stopped.set()

    def _run(self):
        while not self._stopped.wait(self.delay_s):
            try:
                with self.app.app_context():
                    while self.pump() == self.max_batch:  # a backlog: keep posting
                        pass
            except Exception as exc:  # the database away: the receipts wait in memory or the outbox
                log.warning("receipt outbox unavailable: %s: %s", type(exc).__name__, exc)

    def pump(self, now=None):
        """Store what was reported, then post one batch of due receipts; how many were posted."""
        now = now or utcnow()
        self._store(now)
        outbox = self._outbox()
        due = [doc["_id"] for doc in outbox.find({"to": self.url, "dueAt": {"$lte": now}}, {"_id": 1})
               .sort("dueAt", 1).limit(self.max_batch)]
        if not due:
            return 0
        claim = uuid.uuid4().hex
        for chunk in in_chunks(due):
            outbox.update_many({"_id": {"$in": chunk}, "dueAt": {"$lte": now}},
                               {"$set": {"dueAt": now + timedelta(seconds=self.LEASE_S), "claim": claim}})
        batch = list(outbox.find({"claim": claim}))
        if not batch:
            return 0
        if self._post([doc["receipt"] for doc in batch]):
            outbox.delete_many({"claim": claim})
            return len(batch)
        self._later(outbox, claim, batch, now)
        return len(batch)

    def _store(self, now):
        docs = []
        while True:
            try:
                receipt = self._queue.get_nowait()
            except queue.Empty:
                break
            docs.append({"to": self.url, "receipt": receipt, "dueAt": now, "createdAt": now, "attempts": 0})
        if docs:
            try:
                self._outbox().insert_many(docs)
            except Exception:
                for doc in docs:  # kept for the next round
                    self._queue.put(doc["receipt"])
                raise

    def _later(self, outbox, claim, batch, now):
        """The batch was not accepted: try again after a backoff, or drop what is too old."""
        expired = now - timedelta(seconds=self.give_up_s)
        old = [doc["_id"] for doc in batch if doc["createdAt"] < expired]
        if old:
            log.error("dropped %d receipts: webhook %s did not accept them for %.0f hours",
                      len(old), self.url, self.give_up_s / 3600)
            for chunk in in_chunks(old):
                outbox.delete_many({"_id": {"$in": chunk}})
        attempts = max(doc["attempts"] for doc in batch) + 1
        wait = min(self.retry_max_s, self.delay_s * 2 ** attempts)
        outbox.update_many({"claim": claim}, {"$set": {"dueAt": now + timedelta(seconds=wait)},
                                              "$inc": {"attempts": 1}, "$unset": {"claim": ""}})
        log.warning("receipt webhook did not accept %d receipts (attempt %d): next try in %.0fs",
                    len(batch), attempts, wait)

    def _post(self, receipts):
        """True when the webhook accepted the batch (2xx)."""
        body = json.dumps(receipts).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(self.secret, timestamp, body)}
        try:
            response = requests.post(self.url, data=body, headers=headers, timeout=self.POST_TIMEOUT_S)
        except requests.RequestException as exc:
            log.warning("receipt webhook unreachable: %s", exc)
            return False
        if 200 <= response.status_code < 300:
            return True
        log.warning("receipt webhook answered %d: %s", response.status_code, response.text[:200])
        return False


class SimulatedVendor:
    """Accepts everything; reports DELIVERED or FAILED later through the webhook."""

    name = "simulated"
    KEEP = 1000

    def __init__(self, success_rate, seed, reporter=None, hard_bounce_rate=0.0, soft_bounce_rate=0.0,
                 complaint_rate=0.0):
        self.success_rate, self.seed, self.reporter = success_rate, seed, reporter
        self.hard_bounce_rate, self.soft_bounce_rate = hard_bounce_rate, soft_bounce_rate
        self.complaint_rate = complaint_rate
        self.sent = []  # every message id handed to this vendor (tests and benchmarks read it)
        self.messages = collections.deque(maxlen=self.KEEP)  # the latest messages, whole
        self.accepted = set()  # like a provider's idempotency key: one message id, one delivery
        self._lock = threading.Lock()

    @contextmanager
    def session(self):
        """No connection to open."""
        yield self

    def outcome(self, message_id):
        """``(status, reason)`` for a message: deterministic for a seed."""
        rng = random.Random(f"{self.seed}:{message_id}")
        if rng.random() < self.success_rate:
            return "DELIVERED", None
        return "FAILED", rng.choice(FAILURE_REASONS)

    def extra(self, message_id):
        """The receipt's bounce or complaint, by their rates (a draw of its own: with every rate at 0
        the outcomes are those of :meth:`outcome` alone)."""
        draw = random.Random(f"{self.seed}:{message_id}:bounce").random()
        if draw < self.hard_bounce_rate:
            return {"status": "FAILED", "error": "invalid_address", "bounce": "hard"}
        if draw < self.hard_bounce_rate + self.soft_bounce_rate:
            return {"status": "FAILED", "error": "mailbox_full", "bounce": "soft"}
        return {}

    def send(self, message):
        """Accept the message (once per message id); its receipt follows asynchronously."""
        with self._lock:
            self.messages.append(message)
            if message.test:
                return
            self.sent.append(message.message_id)
            if message.message_id in self.accepted:
                return
            self.accepted.add(message.message_id)
        if self.reporter is not None:
            status, reason = self.outcome(message.message_id)
            receipt = {"deliveryId": message.delivery_id, "vendorMessageId": message.message_id,
                       "status": status, "timestamp": utcnow().isoformat() + "Z"}
            if reason:
                receipt["error"] = reason
            receipt.update(self.extra(message.message_id))
            if receipt["status"] == "DELIVERED" and self.complaint_rate and random.Random(
                    f"{self.seed}:{message.message_id}:complaint").random() < self.complaint_rate:
                receipt["complaint"] = True
            self.reporter.report(receipt)


class SmtpVendor:
    """Email through an SMTP server, one connection per batch."""

    name = "smtp"

    def __init__(self, host, port, sender, username=None, password=None, starttls=False, timeout=30):
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    @contextmanager
    def session(self):
        """Connect (and STARTTLS / log in when configured) for one batch."""
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise VendorUnavailable(f"SMTP {self.host}:{self.port}: {exc}") from exc
        try:
            yield _SmtpSession(smtp, self.sender)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass


class _SmtpSession:
    def __init__(self, smtp, sender):
        self.smtp, self.sender = smtp, sender

    def send(self, message):
        email = EmailMessage(policy=SMTP_POLICY)
        sender = self.sender
        if message.from_name:
            sender = formataddr((header_safe(message.from_name), parseaddr(self.sender)[1]))
        email["From"], email["To"] = sender, message.to
        if message.reply_to:
            email["Reply-To"] = header_safe(message.reply_to)
        email["Subject"] = header_safe(message.subject)
        email["Message-ID"] = message.message_id
        if message.unsubscribe_url:
            email["List-Unsubscribe"] = f"<{header_safe(message.unsubscribe_url)}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if message.test:
            email["X-CRM-Test"] = "yes"
        email.set_content(message.body)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        try:
            refused = self.smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _refusal(code, text) from exc
        except smtplib.SMTPResponseException as exc:
            raise _refusal(exc.smtp_code, exc.smtp_error) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise VendorUnavailable(f"SMTP connection lost: {exc}") from exc
        except smtplib.SMTPException as exc:
            raise VendorRejected(f"smtp: {exc}") from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise _refusal(code, text)


def _refusal(code, text):
    """4xx is temporary (retry later), anything else final."""
    reason = f"smtp_{code}: {text.decode(errors='replace') if isinstance(text, bytes) else text}"
    return VendorUnavailable(reason) if 400 <= code < 500 else VendorRejected(reason)


class Vendors:
    """The app's vendor clients: one simulated vendor (and receipt reporter) per setting, made on
    first use; an SMTP client per batch, from the config of the moment."""

    def __init__(self):
        self._simulated, self._reporters = {}, {}
        self._lock = threading.Lock()

    def close(self):
        """Stop the receipt reporters' threads (the app is going away)."""
        with self._lock:
            for reporter in self._reporters.values():
                reporter.stop()
            self._reporters.clear()
            self._simulated.clear()

    def for_config(self, config):
        """The vendor ``config`` names."""
        if config["VENDOR"] == "smtp":
            return SmtpVendor(
                config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_FROM"], config.get("SMTP_USERNAME"),
                config.get("SMTP_PASSWORD"), config["SMTP_STARTTLS"], config["SMTP_TIMEOUT_S"],
            )
        with self._lock:
            reporter = None
            if config["VENDOR_RECEIPTS"] and config.get("VENDOR_WEBHOOK_SECRET"):
                url = (config.get("VENDOR_RECEIPT_URL")
                       or f"http://127.0.0.1:{config['PORT']}/api/delivery-receipts")
                key = (url, config["VENDOR_WEBHOOK_SECRET"], config["VENDOR_RECEIPT_DELAY_S"],
                       config["VENDOR_RECEIPT_RETRY_MAX_S"], config["VENDOR_RECEIPT_GIVE_UP_H"] * 3600,
                       config["VENDOR_RECEIPT_BATCH"])
                if key not in self._reporters:
                    self._reporters[key] = ReceiptReporter(current_app._get_current_object(), *key)
                reporter = self._reporters[key]
            rates = (config["VENDOR_HARD_BOUNCE_RATE"], config["VENDOR_SOFT_BOUNCE_RATE"],
                     config["VENDOR_COMPLAINT_RATE"])
            key = (config["VENDOR_SUCCESS_RATE"], config["VENDOR_SEED"], id(reporter), rates)
            if key not in self._simulated:
                self._simulated[key] = SimulatedVendor(config["VENDOR_SUCCESS_RATE"], config["VENDOR_SEED"],
                                                       reporter, *rates)
            return self._simulated[key]
