"""The SMTP vendor against a real (local) SMTP server started by the test (aiosmtpd): hand-off,
refusals, temporary failures with backoff, a server that is down, and hostile header values."""
import email
import time

import pytest
from aiosmtpd.controller import Controller

import engine
from models import Campaign, Customer, Delivery
from models.roles import MARKETER
from tests.factories import make_user, seed_customers, signed_in

REFUSED = "bounce@shop.com"
FAST_RETRIES = {"VENDOR_RETRY_BASE_S": 0.05, "VENDOR_RETRY_MAX_S": 0.2, "VENDOR_MAX_ATTEMPTS": 3}


class Mailbox:
    """Collects messages; refuses some recipients for good (550) and others for a while (451)."""

    def __init__(self):
        self.messages, self.refused, self.attempts = [], {REFUSED}, {}
        self.temporary = {}  # address → how many more times to answer 451

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.attempts[address] = self.attempts.get(address, 0) + 1
        if address in self.refused:
            return "550 5.1.1 No such user"
        if self.temporary.get(address, 0) > 0:
            self.temporary[address] -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos[:], email.message_from_bytes(envelope.content)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    from tests.processes import free_port

    port = free_port()
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def smtp_app(make_app, smtp_server):
    def build(**overrides):
        settings = {"VENDOR": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_server[1],
                    "SMTP_FROM": "news@crm.example", "VENDOR_RECEIPTS": False, "DISPATCH_BATCH_SIZE": 2,
                    "SMTP_TIMEOUT_S": 2, **FAST_RETRIES, **overrides}
        return make_app(**settings)

    return build


def _campaign(client, name="Thank you", message="Dear {{firstName}}, thanks for {{totalSpend}}.", rules=None):
    response = client.post("/api/campaigns", json={"name": name, "message": message, "rules": rules or []})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_campaign_email_goes_through_smtp(smtp_app, smtp_server, campaign_action):
    mailbox, _ = smtp_server
    app = smtp_app()
    seed_customers([
        {"name": "Ada Lovelace", "email": "ada@shop.com", "totalSpend": 120.5},
        {"name": "Bounce", "email": REFUSED, "totalSpend": 10.0},
        {"name": "Grace Hopper", "email": "grace@shop.com", "totalSpend": 99.0},
    ])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    done = campaign_action(client, _campaign(client)["_id"])
    assert done["status"] == "completed"
    assert (done["stats"]["sent"], done["stats"]["failed"]) == (2, 1)
    assert done["stats"]["failureReasons"][0]["reason"].startswith("smtp_550")

    received = {to[0]: message for to, message in mailbox.messages}
    assert set(received) == {"ada@shop.com", "grace@shop.com"}
    ada = received["ada@shop.com"]
    assert ada["Subject"] == "Thank you" and ada["From"] == "news@crm.example"
    assert ada.get_payload().strip() == "Dear Ada, thanks for 120.5."
    record = Delivery.objects.get(email="ada@shop.com")
    assert ada["Message-ID"] == record.vendor_message_id and record.status == "SENT"
    bounced = Delivery.objects.get(email=REFUSED)
    assert bounced.status == "FAILED" and "No such user" in bounced.error and bounced.sent_at is None
    assert mailbox.attempts[REFUSED] == 1  # a final refusal is not retried


def test_every_recipient_refused_fails_the_campaign_with_the_reason(smtp_app, smtp_server, campaign_action):
    mailbox, _ = smtp_server
    app = smtp_app()
    mailbox.refused |= {"a@shop.com", "b@shop.com"}
    seed_customers([{"name": "A", "email": "a@shop.com"}, {"name": "B", "email": "b@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    done = campaign_action(client, _campaign(client)["_id"])
    assert done["status"] == "failed"
    assert done["lastError"].startswith("Every recipient failed (2)") and "smtp_550" in done["lastError"]
    assert mailbox.messages == []


def test_a_temporary_refusal_is_retried_with_backoff_then_sent_once(smtp_app, smtp_server, campaign_action):
    mailbox, _ = smtp_server
    app = smtp_app(VENDOR_MAX_ATTEMPTS=4)
    mailbox.temporary["ada@shop.com"] = 2  # 451 twice, then accepted
    seed_customers([{"name": "Ada", "email": "ada@shop.com"},
                                            {"name": "Grace", "email": "grace@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    started = time.monotonic()
    done = campaign_action(client, _campaign(client)["_id"])
    assert done["status"] == "completed" and done["stats"]["sent"] == 2
    assert mailbox.attempts["ada@shop.com"] == 3
    assert time.monotonic() - started >= 0.05 + 0.1  # two backoffs, doubling
    assert sorted(to[0] for to, _ in mailbox.messages) == ["ada@shop.com", "grace@shop.com"]
    assert Delivery.objects.get(email="ada@shop.com").attempts == 1  # one hand-off recorded


def test_a_recipient_past_its_retry_cap_fails_and_the_rest_are_sent(smtp_app, smtp_server, campaign_action):
    mailbox, _ = smtp_server
    app = smtp_app()
    mailbox.temporary["stuck@shop.com"] = 100
    seed_customers([{"name": "Stuck", "email": "stuck@shop.com"},
                                            {"name": "Grace", "email": "grace@shop.com"},
                                            {"name": "Ada", "email": "ada@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    done = campaign_action(client, _campaign(client)["_id"])
    assert done["status"] == "completed" and (done["stats"]["sent"], done["stats"]["failed"]) == (2, 1)
    stuck = Delivery.objects.get(email="stuck@shop.com")
    assert stuck.status == "FAILED" and stuck.error.startswith("vendor unavailable after 3 attempts: smtp_451")
    assert mailbox.attempts["stuck@shop.com"] == 3


def test_a_server_down_past_the_retry_budget_fails_the_campaign_and_retry_resumes(
        smtp_app, smtp_server, campaign_action):
    mailbox, port = smtp_server
    from tests.processes import free_port

    app = smtp_app(SMTP_PORT=free_port())  # nothing listens there
    seed_customers([{"name": f"P{i}", "email": f"p{i}@shop.com"} for i in range(4)])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = _campaign(client, message="Hi")
    failed = campaign_action(client, campaign["_id"])
    assert failed["status"] == "failed" and failed["lastError"].startswith("Vendor unavailable")
    stats = failed["stats"]
    # nothing lost: the next recipient waits PENDING, the rest of the audience unplanned behind the
    # cursor; both are pending (still to be sent), so the counts add up to the audience
    assert (stats["failed"], stats["sent"], stats["pending"], stats["audienceSize"]) == (1, 0, 3, 4)
    assert Delivery.objects(status="PENDING").count() == 1
    assert Delivery.objects(status="FAILED").first().error.startswith("vendor unavailable after 3 attempts")
    app.config["SMTP_PORT"] = port  # the server is back
    retried = campaign_action(client, campaign["_id"], "retry-failed")
    assert retried["status"] == "completed" and retried["stats"]["sent"] == 4
    assert sorted(to[0] for to, _ in mailbox.messages) == [f"p{i}@shop.com" for i in range(4)]  # once each


def test_one_stuck_campaign_does_not_hold_up_another(smtp_app, smtp_server):
    mailbox, _ = smtp_server
    app = smtp_app(VENDOR_RETRY_BASE_S=0.5, VENDOR_RETRY_MAX_S=2, VENDOR_MAX_ATTEMPTS=5)
    mailbox.temporary["slow@other.com"] = 100
    seed_customers([{"name": "Slow", "email": "slow@other.com"},
                                            {"name": "Ada", "email": "ada@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    stuck = _campaign(client, name="Other", rules=[{"field": "email", "operator": "contains", "value": "other"}])
    quick = _campaign(client, name="Shop", rules=[{"field": "email", "operator": "contains", "value": "shop"}])
    assert client.post(f"/api/campaigns/{stuck['_id']}/send").status_code == 202
    assert client.post(f"/api/campaigns/{quick['_id']}/send").status_code == 202
    deadline = time.monotonic() + 3
    while Campaign.objects.get(pk=quick["_id"]).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Campaign.objects.get(pk=quick["_id"]).status == "completed"
    assert Campaign.objects.get(pk=stuck["_id"]).status == "sending"  # still backing off, on its own thread
    assert client.post(f"/api/campaigns/{stuck['_id']}/cancel").status_code == 200
    assert engine.wait_idle(app, timeout=5)  # cancel also ends the backoff early


def test_hostile_header_values_never_reach_the_wire(smtp_app, smtp_server, campaign_action):
    """A subject with CR/LF (stored before validation existed) is flattened; a recipient address
    that cannot be a header fails alone; everyone else is sent."""
    mailbox, _ = smtp_server
    app = smtp_app()
    seed_customers([{"name": "Ada", "email": "ada@shop.com"},
                                            {"name": "Evil", "email": "evil@shop.com\r\nBcc: all@victim.com"},
                                            {"name": "Grace", "email": "grace@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = _campaign(client, message="Hi")
    Campaign.objects(pk=campaign["_id"]).update_one(set__name="Sale\r\nBcc: all@victim.com")
    done = campaign_action(client, campaign["_id"])
    assert done["status"] == "completed" and (done["stats"]["sent"], done["stats"]["failed"]) == (2, 1)
    assert sorted(to[0] for to, _ in mailbox.messages) == ["ada@shop.com", "grace@shop.com"]
    for _, message in mailbox.messages:
        assert message["Subject"] == "Sale Bcc: all@victim.com" and message["Bcc"] is None
    evil = Delivery.objects.get(email__startswith="evil@")
    assert evil.status == "FAILED" and "ValueError" in evil.error


def test_a_retry_job_delivered_twice_retries_nobody_twice(smtp_app, smtp_server, campaign_action, monkeypatch):
    """The broker may hand the retry job out again: recipients that failed again in this retry are
    not retried a second time by it."""
    from engine import jobs, runner

    mailbox, _ = smtp_server
    app = smtp_app()
    seed_customers([{"name": "Bounce", "email": REFUSED},
                                            {"name": "Ada", "email": "ada@shop.com"}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = _campaign(client, message="Hi")
    assert campaign_action(client, campaign["_id"])["stats"]["failed"] == 1
    submitted, original = [], runner.submit
    monkeypatch.setattr(runner, "submit", lambda name, *args: (submitted.append((name, args)), original(name, *args)))
    assert campaign_action(client, campaign["_id"], "retry-failed")["status"] == "completed"
    assert mailbox.attempts[REFUSED] == 2
    (name, args), = submitted
    Campaign.objects(pk=campaign["_id"]).update_one(set__status="sending")
    with app.app_context():
        jobs.BY_NAME[name](*args)  # the same job, delivered again
    assert mailbox.attempts[REFUSED] == 2 and len(mailbox.messages) == 1
    assert Campaign.objects.get(pk=campaign["_id"]).status == "completed"


def test_messages_carry_a_one_click_list_unsubscribe_that_works(smtp_app, smtp_server, campaign_action):
    """RFC 8058: the mail client POSTs ``List-Unsubscribe=One-Click`` to the header's https URL."""
    mailbox, _ = smtp_server
    app = smtp_app(PUBLIC_URL="https://crm.example")
    seed_customers([{"name": "Ada", "email": "ada@shop.com", "totalSpend": 1.0}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign_action(client, _campaign(client)["_id"])
    (_, message), = mailbox.messages
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = message["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://crm.example/api/unsubscribe/")
    answer = app.test_client().post(url.removeprefix("https://crm.example"), data="List-Unsubscribe=One-Click",
                                    content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200
    assert Customer.objects.get(email="ada@shop.com").subscribed is False
