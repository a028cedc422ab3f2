"""Recipients' own time of day: the zone a customer is in, the next time it is HH:MM there, and
quiet hours. Wall times come from the zone database for the date in question, so the days clocks
change are right; a wall time a change skips is moved past the gap."""
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app


def zone_of(customer, cache):
    """The customer's zone (``timezone``), else the workspace's (``DEFAULT_TIMEZONE``)."""
    default = current_app.config.get("DEFAULT_TIMEZONE") or "UTC"
    name = customer.get("timezone") or default
    if name not in cache:
        try:
            cache[name] = ZoneInfo(name)
        except (ValueError, ZoneInfoNotFoundError):  # stored around the API: the workspace's zone
            cache[name] = ZoneInfo(default)
    return cache[name]


def parse(text):
    """``"HH:MM"`` → ``(hour, minute)``."""
    hour, minute = (int(part) for part in text.split(":"))
    return hour, minute


def next_wall_time(moment, hour, minute, zone):
    """The first instant at or after ``moment`` (naive UTC) when it is ``hour:minute`` in ``zone``,
    as naive UTC."""
    start = moment.replace(tzinfo=timezone.utc)
    local = start.astimezone(zone)
    for day in range(3):  # today's, or the next day's (one more for a skipped wall time)
        wall = datetime.combine(local.date() + timedelta(days=day), dtime(hour, minute), tzinfo=zone)
        candidate = wall.astimezone(timezone.utc)
        if candidate >= start:
            return candidate.replace(tzinfo=None)
    raise AssertionError("a wall time recurs within three days")


def quiet_window():
    """``QUIET_HOURS`` as ``((start hour, minute), (end hour, minute))``, or None when off."""
    text = current_app.config.get("QUIET_HOURS") or ""
    if not text:
        return None
    start, end = text.split("-")
    return parse(start), parse(end)


def quiet_until(moment, zone, window):
    """When the quiet hours around ``moment`` (naive UTC) end in ``zone`` (naive UTC), or None when
    ``moment`` is outside them there."""
    (start_h, start_m), (end_h, end_m) = window
    local = moment.replace(tzinfo=timezone.utc).astimezone(zone)
    now, start, end = (local.hour, local.minute), (start_h, start_m), (end_h, end_m)
    inside = start <= now < end if start <= end else (now >= start or now < end)
    return next_wall_time(moment, end_h, end_m, zone) if inside else None
