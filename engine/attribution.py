"""Revenue attribution: which campaign an order is credited to, decided once, as the order is recorded.

An order by a recipient within a campaign's ``attributionDays`` after a **touch** is attributed to
that campaign: the touch is a human click (suspected bots never count) or, for a campaign that says
``attributeOn: delivery``, the hand-off itself too. Across campaigns the **last touch** before the
order wins. The attribution is written into the order document by the insert that records it, so it
happens once per order whatever path recorded it (single, bulk, CSV import): an order sent again
with its ``externalId`` is not inserted again, so it is not attributed again.

Set-based: one query per ``MONGO_MAX_IN`` customers for clicks (served by the ``(customer,
lastHumanClickAt)`` index), one for delivery touches when some campaign asks for them, one for the
campaigns' windows; never a query per order.
"""
from datetime import timedelta

from flask import current_app

from models import Campaign, Delivery
from models.db import in_chunks

CLICK, DELIVERY = "click", "delivery"


def attribute(orders):
    """``[(customer id, order date)]`` → a list of ``{campaign, delivery, touch, at}`` or None, in order."""
    wanted = [(customer, date) for customer, date in orders if customer is not None and date is not None]
    if not wanted:
        return [None] * len(orders)
    longest = timedelta(days=current_app.config["ATTRIBUTION_MAX_DAYS"])
    earliest, latest = min(d for _, d in wanted) - longest, max(d for _, d in wanted)
    customers = {customer for customer, _ in wanted}
    touches = _click_touches(customers, earliest, latest) + _delivery_touches(customers, earliest, latest)
    windows = _windows({t["campaign"] for t in touches})
    by_customer = {}
    for touch in touches:
        by_customer.setdefault(touch["customer"], []).append(touch)
    return [_last_touch(by_customer.get(customer, ()), date, windows) if customer is not None and date else None
            for customer, date in orders]


def _last_touch(touches, date, windows):
    best = None
    for touch in touches:
        window = windows.get(touch["campaign"])
        if window is None or (touch["touch"] == DELIVERY and window[1] != DELIVERY):
            continue
        for at in touch["times"]:
            if at <= date and date - at <= window[0] and (best is None or (at, touch["delivery"]) > (
                    best["at"], best["delivery"])):
                best = {"campaign": touch["campaign"], "delivery": touch["delivery"], "touch": touch["touch"],
                        "at": at}
                if touch["variant"] is not None:
                    best["variant"] = touch["variant"]
                if touch["testGroup"]:
                    best["testGroup"] = True
    return best


def _click_touches(customers, earliest, latest):
    touches = []
    for chunk in in_chunks(customers):
        for doc in Delivery._get_collection().find(
                {"customer": {"$in": chunk}, "lastHumanClickAt": {"$gte": earliest},
                 "humanClickAt": {"$lte": latest}},
                {"campaign": 1, "customer": 1, "events": 1, "humanClickAt": 1, "lastHumanClickAt": 1, "variant": 1,
                 "testGroup": 1}):
            times = {e["at"] for e in doc.get("events") or () if e.get("kind") == "click" and not e.get("bot")}
            times.update((doc["humanClickAt"], doc["lastHumanClickAt"]))  # the log may have dropped them
            touches.append({"campaign": doc["campaign"], "customer": doc["customer"], "delivery": doc["_id"],
                            "touch": CLICK, "times": sorted(times), "variant": doc.get("variant"),
                            "testGroup": doc.get("testGroup", False)})
    return touches


def _delivery_touches(customers, earliest, latest):
    campaigns = [c.pk for c in Campaign.objects(attribute_on=DELIVERY, started_at__lte=latest).only("id")]
    if not campaigns:
        return []
    touches = []
    for campaign_chunk in in_chunks(campaigns):
        for chunk in in_chunks(customers):
            for doc in Delivery._get_collection().find(
                    {"campaign": {"$in": campaign_chunk}, "customer": {"$in": chunk},
                     "sentAt": {"$gte": earliest, "$lte": latest}},
                    {"campaign": 1, "customer": 1, "sentAt": 1, "variant": 1, "testGroup": 1}):
                touches.append({"campaign": doc["campaign"], "customer": doc["customer"], "delivery": doc["_id"],
                                "touch": DELIVERY, "times": [doc["sentAt"]], "variant": doc.get("variant"),
                                "testGroup": doc.get("testGroup", False)})
    return touches


def _windows(campaign_pks):
    """``{campaign: (window, touch kind)}``."""
    return {c.pk: (timedelta(days=c.attribution_days if c.attribution_days is not None else 5),
                   c.attribute_on or CLICK)
            for chunk in in_chunks(campaign_pks)
            for c in Campaign.objects(pk__in=chunk).only("id", "attribution_days", "attribute_on")}
