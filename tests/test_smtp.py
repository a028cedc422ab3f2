"""The SMTP vendor against a real (local) SMTP server started by the test (aiosmtpd)."""
import email

import pytest
from aiosmtpd.controller import Controller

from models import Customer, Delivery
from security.roles import MARKETER
from tests.conftest import make_user, signed_in

REFUSED = "bounce@shop.com"


class Mailbox:
    """Collects messages; refuses one recipient as a real server would (550)."""

    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == REFUSED:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos[:], email.message_from_bytes(envelope.content)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def test_campaign_email_goes_through_smtp(make_app, smtp_server):
    mailbox, port = smtp_server
    app = make_app(VENDOR="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_FROM="news@crm.example",
                   VENDOR_RECEIPTS=False, DISPATCH_BATCH_SIZE=2)
    Customer._get_collection().insert_many([
        {"name": "Ada Lovelace", "email": "ada@shop.com", "totalSpend": 120.5},
        {"name": "Bounce", "email": REFUSED, "totalSpend": 10.0},
        {"name": "Grace Hopper", "email": "grace@shop.com", "totalSpend": 99.0},
    ])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = client.post("/api/campaigns", json={
        "name": "Thank you", "message": "Dear {{firstName}}, thanks for {{totalSpend}}.", "rules": []}).get_json()
    done = client.post(f"/api/campaigns/{campaign['_id']}/send").get_json()
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
    assert bounced.status == "FAILED" and "No such user" in bounced.error


def test_unreachable_smtp_server_fails_the_campaign_and_retry_resumes(make_app, smtp_server):
    mailbox, port = smtp_server
    app = make_app(VENDOR="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=9, SMTP_FROM="news@crm.example",
                   VENDOR_RECEIPTS=False, SMTP_TIMEOUT_S=2)
    Customer._get_collection().insert_many([{"name": "Ada", "email": "ada@shop.com", "totalSpend": 1.0}])
    client = signed_in(app, make_user(MARKETER, email="m@example.com"))
    campaign = client.post("/api/campaigns", json={"name": "T", "message": "Hi", "rules": []}).get_json()
    failed = client.post(f"/api/campaigns/{campaign['_id']}/send").get_json()
    assert failed["status"] == "failed" and failed["lastError"].startswith("Vendor unavailable")
    assert failed["stats"]["pending"] == 1  # nothing lost: the message waits
    app.config["SMTP_PORT"] = port  # the server is back
    retried = client.post(f"/api/campaigns/{campaign['_id']}/retry-failed").get_json()
    assert retried["status"] == "completed" and retried["stats"]["sent"] == 1
    assert [to for to, _ in mailbox.messages] == [["ada@shop.com"]]
