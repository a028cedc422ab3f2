"""Messaging vendors: who actually sends a campaign's messages.

- ``simulated`` (default): accepts every message, then reports each outcome (DELIVERED, or FAILED
  with a reason, at ``VENDOR_SUCCESS_RATE``) back to ``POST /api/delivery-receipts`` a little later,
  signed like a real provider's webhook. Outcomes are a pure function of ``VENDOR_SEED`` and the
  message, so runs are reproducible.
- ``smtp``: sends email through ``SMTP_HOST``; a recipient the server refuses for good (5xx) is
  FAILED at once, a temporary refusal (4xx), a timeout or a lost connection is retried by the sender.

Vendors are per app (``app.extensions["engine"]``), so two apps in one process never share one.
"""
import hashlib
import hmac
import json
import logging
import queue
import random
import smtplib
import threading
import time
from email import policy as email_policy
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage

import requests

from models.base import utcnow

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
    body: str
    unsubscribe_url: str | None = None  # sent as RFC 8058 List-Unsubscribe (one click)


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
    """Posts receipts to the webhook from a background thread, in batches, like a provider does."""

    def __init__(self, url, secret, delay_s=0.2, max_batch=500):
        self.url, self.secret, self.delay_s, self.max_batch = url, secret, delay_s, max_batch
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="receipt-reporter", daemon=True)
        self._thread.start()

    def report(self, receipt):
        """Queue one receipt."""
        self._queue.put(receipt)

    def _run(self):
        while True:
            batch = [self._queue.get()]
            time.sleep(self.delay_s)
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._post(batch)

    def _post(self, batch):
        body = json.dumps(batch).encode()
        for attempt in range(3):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.secret, timestamp, body),
            }
            try:
                response = requests.post(self.url, data=body, headers=headers, timeout=10)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning("receipt webhook refused %d receipts: %s", len(batch), response.text[:200])
                    return
            except requests.RequestException as exc:
                log.warning("receipt webhook unreachable (attempt %d): %s", attempt + 1, exc)
            time.sleep(0.5 * (attempt + 1))
        log.error("dropped %d receipts: webhook %s did not accept them", len(batch), self.url)


class SimulatedVendor:
    """Accepts everything; reports DELIVERED or FAILED later through the webhook."""

    name = "simulated"

    def __init__(self, success_rate, seed, reporter=None):
        self.success_rate, self.seed, self.reporter = success_rate, seed, reporter
        self.sent = []  # every message id handed to this vendor (tests and benchmarks read it)
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

    def send(self, message):
        """Accept the message (once per message id); its receipt follows asynchronously."""
        with self._lock:
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
        email["From"], email["To"] = self.sender, message.to
        email["Subject"] = header_safe(message.subject)
        email["Message-ID"] = message.message_id
        if message.unsubscribe_url:
            email["List-Unsubscribe"] = f"<{header_safe(message.unsubscribe_url)}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(message.body)
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
                key = (url, config["VENDOR_WEBHOOK_SECRET"], config["VENDOR_RECEIPT_DELAY_S"])
                if key not in self._reporters:
                    self._reporters[key] = ReceiptReporter(*key)
                reporter = self._reporters[key]
            key = (config["VENDOR_SUCCESS_RATE"], config["VENDOR_SEED"], id(reporter))
            if key not in self._simulated:
                self._simulated[key] = SimulatedVendor(config["VENDOR_SUCCESS_RATE"], config["VENDOR_SEED"],
                                                       reporter)
            return self._simulated[key]
