"""A campaign sent at a local time: every recipient gets it at that time in their own zone (their
``timezone``, else the workspace's), across the day the clocks change; the campaign stays sending
until the last zone's moment and then completes."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import engine
from engine import jobs, runner
from models import Campaign, Delivery
from models.delivery import PENDING
from tests.checks import error_of
from tests.factories import seed_customers

# 2026-03-08 is the day New York moves its clocks forward (02:00 EST → 03:00 EDT)
START = datetime(2026, 3, 8, 0, 0)


def _sweep(app):
    with app.app_context():
        jobs.sweep(runner.submit)
    assert engine.wait_idle(app, timeout=60)


def _sent(email):
    return Delivery.objects.get(email=email)


def _handed(app, email):
    """How many messages the vendor took for ``email``."""
    with app.app_context():
        return sum(1 for message in engine.vendor(app).messages if message.to == email)


def _sent_exactly_at(app, clock, email, moment, why):
    """A minute before ``moment`` the record waits and the vendor has nothing for ``email``; just
    after it (the sweep having run each time) the vendor has it once and the record is sent."""
    clock.travel_to(moment - timedelta(minutes=1))
    _sweep(app)
    assert _sent(email).status == PENDING, f"{email} was sent {why}"
    assert _handed(app, email) == 0, f"the vendor had {email}'s message {why}"
    clock.travel_to(moment + timedelta(seconds=30))
    _sweep(app)
    assert _sent(email).status != PENDING and _handed(app, email) == 1, email
    return _sent(email)


@pytest.fixture
def people(app):
    seed_customers([{"name": "Asha", "email": "asha@shop.com", "timezone": "Asia/Kolkata"},
                    {"name": "Nora", "email": "nora@shop.com", "timezone": "America/New_York"},
                    {"name": "Una", "email": "una@shop.com"}])  # no zone: the workspace's (UTC)


def test_each_recipient_gets_it_at_ten_in_their_own_zone_across_the_clock_change(client, app, clock, people):
    clock.travel_to(START)
    created = client.post("/api/campaigns", json={"name": "Morning", "rules": [], "text": "Good morning",
                                                  "sendAtLocalTime": "10:00"})
    assert created.status_code == 201 and created.get_json()["sendAtLocalTime"] == "10:00"
    ident = created.get_json()["_id"]
    assert client.post(f"/api/campaigns/{ident}/send").status_code in (200, 202)
    assert engine.wait_idle(app, timeout=60)
    assert {d.status for d in Delivery.objects} == {PENDING}  # nobody's 10:00 yet
    expected = {"asha@shop.com": datetime(2026, 3, 8, 4, 30),   # 10:00 IST (UTC+5:30)
                "una@shop.com": datetime(2026, 3, 8, 10, 0),    # 10:00 UTC
                "nora@shop.com": datetime(2026, 3, 8, 14, 0)}   # 10:00 EDT (UTC-4 since 07:00 UTC that day)
    for email, due in sorted(expected.items(), key=lambda item: item[1]):
        record = _sent_exactly_at(app, clock, email, due, "before their 10:00")
        assert due <= record.sent_at <= due + timedelta(minutes=1), email
        local = record.sent_at.replace(tzinfo=timezone.utc).astimezone(
            ZoneInfo({"asha@shop.com": "Asia/Kolkata", "nora@shop.com": "America/New_York"}.get(email, "UTC")))
        assert (local.hour, local.minute) == (10, 0), (email, local)
        assert Campaign.objects.get(pk=ident).status == ("completed" if email == "nora@shop.com" else "sending")


def test_after_ten_it_is_tomorrow_at_ten_and_the_workspace_zone_is_a_setting(make_app, clock):
    app = make_app(DEFAULT_TIMEZONE="Asia/Tokyo")
    client = app.test_client()
    from tests.factories import make_user, signed_in

    client = signed_in(app, make_user())
    seed_customers([{"name": "Kenji", "email": "kenji@shop.com"}])
    clock.travel_to(datetime(2026, 6, 1, 3, 0))  # 12:00 in Tokyo: today's 10:00 has passed
    ident = client.post("/api/campaigns", json={"name": "M", "rules": [], "text": "Hi",
                                                "sendAtLocalTime": "10:00"}).get_json()["_id"]
    client.post(f"/api/campaigns/{ident}/send")
    assert engine.wait_idle(app, timeout=60)
    with app.app_context():
        record = Delivery.objects.get(email="kenji@shop.com")
        assert record.status == PENDING
        assert Delivery._get_collection().find_one({"_id": record.pk})["notBefore"] == datetime(2026, 6, 2, 1, 0)


@pytest.mark.parametrize("body, field", [
    ({"sendAtLocalTime": "24:00"}, "sendAtLocalTime"), ({"sendAtLocalTime": "9:00"}, "sendAtLocalTime"),
    ({"sendAtLocalTime": "10:00", "variants": [{"subject": "A"}, {"subject": "B"}],
      "abTest": {"testPercent": 40, "metric": "clicks", "decideAfterMinutes": 60, "fallback": "first"}},
     "sendAtLocalTime"),
])
def test_bad_local_times_are_refused(client, body, field):
    response = client.post("/api/campaigns", json={"name": "M", "rules": [], "text": "Hi", **body})
    assert response.status_code == 400 and field in error_of(response)["errors"], response.get_json()
    assert Campaign.objects.count() == 0


def test_a_workspace_zone_that_is_not_one_refuses_to_start(make_app):
    from config import ConfigError

    with pytest.raises(ConfigError, match="DEFAULT_TIMEZONE"):
        make_app(DEFAULT_TIMEZONE="Mars/Olympus_Mons")


ZONES = {"asha@shop.com": "Asia/Kolkata", "kavi@shop.com": "Asia/Kolkata", "nora@shop.com": "America/New_York",
         "una@shop.com": "UTC"}


def test_quiet_hours_hold_each_message_until_eight_where_its_recipient_is(make_app, clock):
    from tests.factories import make_user, signed_in

    app = make_app(QUIET_HOURS="21:00-08:00")
    client = signed_in(app, make_user())
    seed_customers([{"name": "Asha", "email": "asha@shop.com", "timezone": "Asia/Kolkata"},
                    {"name": "Nora", "email": "nora@shop.com", "timezone": "America/New_York"},
                    {"name": "Kavi", "email": "kavi@shop.com", "timezone": "Asia/Kolkata"},  # sent: Nora between
                    {"name": "Una", "email": "una@shop.com"}])
    # 03:00 UTC on the day New York's clocks change: 22:00 there (quiet), 08:30 in Kolkata, 03:00 in UTC (quiet)
    clock.travel_to(datetime(2026, 3, 8, 3, 0))
    ident = client.post("/api/campaigns", json={"name": "Now", "rules": [], "text": "Hi"}).get_json()["_id"]
    client.post(f"/api/campaigns/{ident}/send")
    assert engine.wait_idle(app, timeout=60)
    with app.app_context():
        assert _sent("asha@shop.com").status != PENDING  # not quiet in Kolkata: sent at once
        assert _sent("kavi@shop.com").status != PENDING
        assert _sent("una@shop.com").status == PENDING and _sent("nora@shop.com").status == PENDING
        for email, end in (("una@shop.com", datetime(2026, 3, 8, 8, 0)),      # 08:00 UTC
                           ("nora@shop.com", datetime(2026, 3, 8, 12, 0))):   # 08:00 EDT, after the change
            _sent_exactly_at(app, clock, email, end, "in their quiet hours")
        assert Campaign.objects.get(pk=ident).status == "completed"
        assert sorted(message.to for message in engine.vendor(app).messages) == sorted(ZONES)  # once each
        for record in Delivery.objects:
            local = record.sent_at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(ZONES[record.email]))
            assert 8 <= local.hour < 21, (record.email, local)


@pytest.mark.parametrize("value", ["21:00", "21:00-8:00", "25:00-08:00", "08:00-08:00"])
def test_quiet_hours_that_are_not_a_window_refuse_to_start(make_app, value):
    from config import ConfigError

    with pytest.raises(ConfigError, match="QUIET_HOURS"):
        make_app(QUIET_HOURS=value)
