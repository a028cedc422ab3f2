"""Open and click tracking: signed per-recipient tokens, one write per event, bots told apart.

**Tokens.** A pixel or click URL carries ``base64url(delivery id, campaign id, hand-off second,
variant, kind, link index) + HMAC-SHA256`` (16 bytes, keyed from ``UNSUBSCRIBE_SECRET``, else the
session secret). It names a link by its index in the campaign's stored ``links``, never a URL, so
no token can redirect anywhere the message did not link to; a token changed in any character, or
naming a link past the end or a delivery that does not exist (erased), is unknown: 404, nothing
recorded. A lifecycle flow's message is its own one-message send: its token names its record as the
campaign and ``FLOW_MESSAGE`` as the variant, and its links are its send step's (of the flow version
the enrolment followed, stored once per version).

**Recording.** Each event is one conditional update of its delivery record: raw and human counts,
first/last times, the first human open/click, a click's link in the recipient's clicked (and human-
clicked) links, and the event (time, link, user-agent class, method, IP prefix /24 or /48 — never
the full address) pushed onto a log capped at ``TRACKING_EVENT_LOG`` (counts stay exact beyond it).
The same update counts the event in the record's hour and link counters and marks the record due,
so the campaign's tallies fold it in when they are next read or swept (:mod:`engine.tallies`): the
request itself writes nothing else.

**Bots** (``suspectedBot`` with a reason; counted raw, never human):
- ``head``: a HEAD request (link checkers);
- ``scanner``: a known security scanner's or tool's user agent;
- ``privacy_proxy``: an open from Apple Mail Privacy Protection (its agent, or an address in
  ``TRACKING_PROXY_NETWORKS``): it prefetches every image whether or not anyone reads the message;
- ``too_soon``: within ``TRACKING_BOT_DELAY_S`` of the hand-off (scanners act on arrival; people do
  not read that fast). Measured from the hand-off, which precedes delivery, so this never flags
  more than "within N seconds of delivery" would;
- ``all_links``: the recipient clicked every tracked link (two or more) within
  ``TRACKING_ALL_LINKS_S``: all those clicks are marked, including ones recorded as human before
  the last of them arrived.
Gmail's image proxy (``GoogleImageProxy``) fetches the pixel when the person opens the message, so
its open is **human**; Gmail caches the image, so later opens of the same message are not seen and
the time is that of the first open. Other clients count as they come.
"""
import base64
import hashlib
import hmac
import ipaddress
import struct
from functools import lru_cache
from datetime import datetime, timedelta, timezone

from bson import ObjectId
from bson.errors import InvalidId
from flask import current_app
from pymongo import ReturnDocument

from engine import tallies
from engine.content import link_target
from engine.templates import CUSTOMER_FIELDS
from models import Campaign, Customer, Delivery, FlowVersion
from models.base import utcnow

OPEN, CLICK = 0, 1
# the variant byte of a flow message's tokens: its links are its send step's (the flow version it followed);
# its record is its own campaign (``campaign`` = the record's id)
FLOW_MESSAGE = 255
KINDS = {OPEN: "open", CLICK: "click"}
_PAYLOAD = struct.Struct(">12s12sIBBH")  # delivery, campaign, hand-off (unix s), variant, kind, link
_MAC = 16
_TOKEN_BYTES = _PAYLOAD.size + _MAC
PATHS = {OPEN: "/api/t/o/", CLICK: "/api/t/c/"}
HOUR = "%Y-%m-%dT%H:00:00Z"
# agents of mail security scanners, link checkers and tools (lower case substrings)
SCANNER_AGENTS = ("barracuda", "mimecast", "proofpoint", "symantec", "forcepoint", "trendmicro", "sophos",
                  "fireeye", "ironport", "safelinks", "microsoft office protection", "bitdefender",
                  "bot", "crawler", "spider", "curl/", "wget/", "python-requests", "python-urllib",
                  "go-http-client", "okhttp", "java/", "headlesschrome", "phantomjs", "preview")
APPLE_PROXY_AGENT = "Mozilla/5.0"  # exactly this, nothing after it: Apple's Mail Privacy Protection
GMAIL_PROXY = "googleimageproxy"


def _key():
    config = current_app.config
    return _derived_key(config.get("UNSUBSCRIBE_SECRET") or config["SECRET_KEY"])


@lru_cache(maxsize=4)
def _derived_key(secret):
    return hmac.new(secret.encode(), b"crm.tracking", hashlib.sha256).digest()


def _b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(delivery_id, campaign_id, sent_at, kind, link=0, variant=0):
    """The signed token for one delivery's pixel (``OPEN``) or link ``link`` (``CLICK``)."""
    seconds = int(sent_at.replace(tzinfo=timezone.utc).timestamp())
    payload = _PAYLOAD.pack(ObjectId(delivery_id).binary, ObjectId(campaign_id).binary, seconds, variant,
                            kind, link)
    return _b64(payload + hmac.new(_key(), payload, hashlib.sha256).digest()[:_MAC])


def url(base, delivery_id, campaign_id, sent_at, kind, link=0, variant=0):
    """The absolute pixel or click URL on ``base``."""
    return base + PATHS[kind] + token(delivery_id, campaign_id, sent_at, kind, link, variant)


def message_urls(base, delivery_id, campaign_id, sent_at, variant=0):
    """A message's tracking URLs for :func:`engine.content.build`: ``(open URL, click URL of link i)``."""
    def click(index):
        return url(base, delivery_id, campaign_id, sent_at, CLICK, index, variant)

    return url(base, delivery_id, campaign_id, sent_at, OPEN, 0, variant), click


def read(value, kind):
    """``{delivery, campaign, sentAt, variant, link}`` from a token of ``kind``, or None when it is
    not one of ours (any change to any character makes it fail)."""
    if not isinstance(value, str) or len(value) != -(-_TOKEN_BYTES * 4 // 3) or not value.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None
    if len(raw) != _TOKEN_BYTES or _b64(raw) != value:  # one encoding only: no alternative spellings
        return None
    payload, mac = raw[:_PAYLOAD.size], raw[_PAYLOAD.size:]
    if not hmac.compare_digest(mac, hmac.new(_key(), payload, hashlib.sha256).digest()[:_MAC]):
        return None
    delivery, campaign, seconds, variant, token_kind, link = _PAYLOAD.unpack(payload)
    if token_kind != kind:
        return None
    try:
        return {"delivery": ObjectId(delivery), "campaign": ObjectId(campaign), "variant": variant, "link": link,
                "sentAt": datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)}
    except InvalidId:
        return None


@lru_cache(maxsize=4096)
def _ip(address):
    """An address parsed (None when it is none): a recipient's mail client comes back from one address."""
    try:
        return ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return None


def ip_prefix(address):
    """The /24 (IPv4) or /48 (IPv6) network of an address; None when there is none."""
    ip = _ip(address)
    if ip is None:
        return None
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return f"{ipaddress.IPv4Address(int(ip) >> 8 << 8)}/24"
    return f"{ipaddress.IPv6Address(int(ip) >> 80 << 80)}/48"


def agent_class(agent, address, networks):
    """``(class, bot reason or None)`` of a request's user agent (and address, for proxies)."""
    text = (agent or "").strip()
    if GMAIL_PROXY in text.lower():
        return "image_proxy", None
    if text == APPLE_PROXY_AGENT or _in_networks(address, networks):
        return "privacy_proxy", "privacy_proxy"
    return _agent_kind(text)


@lru_cache(maxsize=1024)
def _agent_kind(text):
    """The class of a user agent that is no proxy (a few hundred agents make most of the traffic)."""
    lowered = text.lower()
    if any(name in lowered for name in SCANNER_AGENTS):
        return "scanner", "scanner"
    if not text:
        return "unknown", None
    if any(word in lowered for word in ("mobile", "iphone", "android", "ipad")):
        return "mobile", None
    return "desktop", None


def _in_networks(address, networks):
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)


def proxy_networks(config):
    """``TRACKING_PROXY_NETWORKS`` parsed (validated at start-up; parsed once per value)."""
    return _networks(config.get("TRACKING_PROXY_NETWORKS") or "")


@lru_cache(maxsize=8)
def _networks(value):
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in value.split(",") if n.strip())


def classify(kind, claims, now, method, agent, address):
    """The event to record, with ``bot`` and ``reason`` by the rules above (all but ``all_links``)."""
    config = current_app.config
    agent_kind, reason = agent_class(agent, address, proxy_networks(config))
    if reason == "privacy_proxy" and kind == CLICK:
        reason = None  # a proxy fetches images, not links: a click from its address is a person's
    if method == "HEAD":
        reason = "head"
    elif reason is None and (now - claims["sentAt"]).total_seconds() < config["TRACKING_BOT_DELAY_S"]:
        reason = "too_soon"
    event = {"kind": KINDS[kind], "at": now, "agent": agent_kind, "ip": ip_prefix(address), "method": method,
             "bot": reason is not None, "hour": now.strftime(HOUR)}  # the report's series groups by it
    if kind == CLICK:
        event["link"] = claims["link"]
    if reason:
        event["reason"] = reason
    return event


def event_update(kind, event, cap, tally=True):
    """The one update that records ``event`` (from :func:`classify`) on its delivery: raw and human
    counts, first and last times, the first human one, a click's link in the recipient's clicked (and
    human-clicked) links, the event on the log capped at ``cap``; for a campaign's message (``tally``)
    also what its tallies will fold in (:func:`engine.tallies.event_fields`)."""
    name = "Open" if kind == OPEN else "Click"
    now, human = event["at"], not event["bot"]
    update = {
        "$inc": {f"{name.lower()}s": 1, f"human{name}s": int(human)},
        "$min": {f"first{name}At": now},
        "$max": {f"last{name}At": now},
        "$push": {"events": {"$each": [event], "$slice": -cap}},
    }
    if human:
        update["$min"][f"human{name}At"] = now
        if kind == CLICK:
            update["$max"]["lastHumanClickAt"] = now
    if kind == CLICK:
        update["$addToSet"] = {"clickedLinks": event["link"], **({"humanLinks": event["link"]} if human else {})}
    if tally:
        update["$inc"].update(tallies.event_fields(KINDS[kind], tallies.hour_of(event["hour"]), human,
                                                   event.get("link")))
        update["$set"] = {tallies.DUE: True}
    return update


# what the burst rule reads back (the event log, and the counts its compare-and-set names)
_BURST = dict.fromkeys(("events", "humanClickAt", "clicks", "humanClicks"), 1)


def record(kind, claims, method, agent, address, link_count=0):
    """Record one event on its delivery: one write (its tallies fold it in later: engine.tallies).
    True, or None when the delivery does not exist (nothing recorded).

    A click that may complete a burst over every link (two or more links, and a click of the
    recipient's within ``TRACKING_ALL_LINKS_S`` before it: the first write's condition says which)
    is written again in a way that returns the record, to read its event log. Of two clicks at once,
    the second to write sees the first's event in the record as it was, so it sees both."""
    now = utcnow()
    event = classify(kind, claims, now, method, agent, address)
    cap_ = current_app.config["TRACKING_EVENT_LOG"]
    tally = claims["variant"] != FLOW_MESSAGE  # a flow's messages are counted by their flows
    update = event_update(kind, event, cap_, tally)
    collection = Delivery._get_collection()
    which = {"_id": claims["delivery"], "campaign": claims["campaign"]}
    if not (kind == CLICK and link_count >= 2):
        return collection.update_one(which, update).matched_count or None
    cutoff = now - timedelta(seconds=current_app.config["TRACKING_ALL_LINKS_S"])
    if collection.update_one({**which, "lastClickAt": {"$not": {"$gte": cutoff}}}, update).matched_count:
        return True  # no click within the window before this one: no burst can be complete
    before = collection.find_one_and_update(which, update, projection=_BURST, return_document=ReturnDocument.BEFORE)
    if before is None:
        return None
    _all_links(collection, _after(before, event, cap_), link_count, now, tally)
    return True


def _after(before, event, cap):
    """The record after ``event`` (a click) was recorded on ``before``: what the update wrote."""
    human = not event["bot"]
    after = {**before, "events": ((before.get("events") or []) + [event])[-cap:],
             "clicks": before.get("clicks", 0) + 1, "humanClicks": before.get("humanClicks", 0) + int(human)}
    if human:
        first = before.get("humanClickAt")
        after["humanClickAt"] = event["at"] if first is None else min(first, event["at"])
    return after


def _all_links(collection, doc, link_count, now, tally=True):
    """Mark the burst when the recipient's clicks within ``TRACKING_ALL_LINKS_S`` cover every link,
    taking the marked clicks off the record's human figures (and, for ``tally``, off its hours'
    human events, for its tallies to fold in).

    Concurrent clicks each write first and read after, so the last writer always sees the whole
    burst; the mark is a compare-and-set on the counts it read, so it applies once."""
    window = timedelta(seconds=current_app.config["TRACKING_ALL_LINKS_S"])
    events = doc.get("events") or []
    burst = [e for e in events if e["kind"] == "click" and now - e["at"] <= window]
    if len({e.get("link") for e in burst}) < link_count:
        return
    unmarked = [e for e in burst if not e.get("bot")]
    if not unmarked:
        return
    for event in unmarked:
        event.update(bot=True, reason="all_links")
    human = [e for e in events if e["kind"] == "click" and not e.get("bot")]
    fields = {"events": events, "humanClicks": max(0, doc.get("humanClicks", 0) - len(unmarked))}
    change = {"$set": fields}
    if fields["humanClicks"] == 0:
        change["$unset"] = {"humanClickAt": "", "lastHumanClickAt": ""}
    else:
        if human:
            fields["lastHumanClickAt"] = max(e["at"] for e in human)
        first = doc.get("humanClickAt")
        if first is not None and any(e["at"] == first for e in unmarked):
            fields["humanClickAt"] = min(e["at"] for e in human) if human else first
    lost = sorted({e.get("link") for e in unmarked} - {e.get("link") for e in human})  # no human click left
    if lost:
        change["$pull"] = {"humanLinks": {"$in": lost}}
    if tally:
        taken = {}
        for event in unmarked:
            hour = tallies.hour_of(event.get("hour") or event["at"].strftime(HOUR))
            path = f"{tallies.HOURS}.{hour}.humanClickEvents"
            taken[path] = taken.get(path, 0) - 1
        change["$inc"] = {**taken, tallies.VERSION: 1}
        fields[tallies.DUE] = True
    collection.update_one({"_id": doc["_id"], "clicks": doc["clicks"], "humanClicks": doc.get("humanClicks", 0)},
                          change)


class _NoCampaign(LookupError):
    pass


@lru_cache(maxsize=1024)
def _links(campaign_id, variant):
    """The tracked links of a campaign's message (of A/B ``variant``): content never changes once created."""
    campaign = Campaign.objects(pk=campaign_id).only("links", "variants").first()
    if campaign is None:
        raise _NoCampaign(campaign_id)  # not cached: lru_cache keeps answers only
    if campaign.variants:
        return tuple(campaign.variants[variant]["links"]) if variant < len(campaign.variants) else ()
    return tuple(campaign.links or ())


@lru_cache(maxsize=1024)
def _step_links(flow_pk, version, step):
    """The tracked links of a flow version's send step: a version's steps never change once stored."""
    found = FlowVersion._get_collection().find_one({"_id": f"{flow_pk}:{version}"}, {"steps": 1})
    steps = found["steps"] if found else ()
    return tuple(steps[step].get("links") or ()) if step < len(steps) else ()


def _message_links(claims):
    """The tracked links of the message a click token names (a campaign's, an A/B variant's, a flow
    step's); raises :class:`_NoCampaign` when it is gone."""
    if claims["variant"] != FLOW_MESSAGE:
        return _links(claims["campaign"], claims["variant"])
    record = Delivery._get_collection().find_one({"_id": claims["delivery"], "campaign": claims["campaign"]},
                                                  {"flow": 1, "flowVersion": 1, "flowStep": 1})
    if record is None or record.get("flow") is None:
        raise _NoCampaign(claims["campaign"])
    return _step_links(record["flow"], record.get("flowVersion"), record.get("flowStep", 0))


def track_open(value, method, agent, address):
    """Record an open for a pixel token; None when the token is unknown (nothing recorded)."""
    claims = read(value, OPEN)
    return None if claims is None else record(OPEN, claims, method, agent, address)


def track_click(value, method, agent, address):
    """Record a click for a link token and return where it goes; None when the token is unknown or
    names no link of its message (nothing recorded)."""
    claims = read(value, CLICK)
    if claims is None:
        return None
    try:
        links = _message_links(claims)
    except _NoCampaign:
        return None
    if claims["link"] >= len(links):
        return None
    link = links[claims["link"]]
    if record(CLICK, claims, method, agent, address, len(links)) is None:
        return None
    customer = {}
    if "{" in link:  # personal values in the path or query: the customer's, now
        doc = Delivery._get_collection().find_one({"_id": claims["delivery"]}, {"customer": 1}) or {}
        customer = Customer._get_collection().find_one(
            {"_id": doc.get("customer")}, dict.fromkeys(CUSTOMER_FIELDS, 1)) or {}
    return link_target(link, customer)
