"""A campaign's figures kept as running tallies, so its report reads a few small documents instead of
aggregating every delivery record and event (:mod:`engine.reports`).

**Documents** (``campaign_tallies``), small and bounded, per (campaign, A/B variant, test group or not):

- one for its records' states, ``_id`` ``"<campaign>:<variant or ->:<0|1>"``: ``pending``, ``sent``,
  ``delivered``, ``failed``, ``handedOff``, ``bounced``, ``hardBounced``, ``complaints``,
  ``unsubscribed``; ``uniqueOpens``/``uniqueClicks`` (recipients with one) and ``humanOpens``/
  ``humanClicks`` (with one not suspected to be a bot); per link ``links.<i>.{total, unique,
  uniqueHuman}``;
- one per hour its recipients opened or clicked (``…:<YYYYMMDDHH>``, ``hour`` set): ``opens`` and
  ``clicks`` (events) and ``humanOpenEvents`` and ``humanClickEvents`` (the series' human figures).

A report sums them (a campaign tracked for a month has a few hundred). Each counter is ``$inc``-ed
(upserted) by the write that changed the records, with the number that write reports it changed, so
a write that changes nothing (a receipt posted twice, a chunk recorded twice) adds nothing:

- planning: ``pending`` += records inserted (:func:`engine.store.insert_records`);
- the sender's outcomes: ``pending`` → ``sent`` (+ ``handedOff``) or → ``failed``
  (:func:`engine.store.record_outcomes`, per key);
- receipts: ``pending``/``sent`` → ``delivered``/``failed``, bounces, complaints
  (:func:`engine.store.apply_receipt_groups`, :func:`engine.store.mark_complaints`);
- a retry of the failed: ``failed`` → ``pending`` (and ``handedOff`` back for those handed off);
- unsubscribes through the campaign's link.

**Opens and clicks are folded in, not written with each event**, so the tracking request stays one
write. The event's own update of its delivery record (:func:`engine.tracking.event_update`) also
counts it in the record's ``eventHours.<YYYYMMDDHH>`` (the hour's four event counters), a click in
``linkClicks.<i>``, raises ``tallyVersion`` and sets ``tallyDue``; the burst rule's re-marking does
the same with the human counts it takes back. :func:`fold` turns due records into tally increments:
it compares each record with the state it last folded (``folded``: counts, clicked links, per-hour
and per-link counters) — the recipient's first (human) open or click, a link's first (human) click
are the records' counts and link lists going from none to some (or back, after a burst) — and moves
``folded`` forward with a compare-and-set on ``tallyVersion``, so a record is folded once whoever
folds it, and an event that lands meanwhile stays due for the next fold. Every read of tallies
(:func:`rows`: reports, the list, the CSV, A/B decisions) folds the campaigns' due records first, so
figures are current to the last recorded event; the scheduler's sweep folds every due record too
(``crm.fold_tallies``), so a read has little to fold.

**Which campaigns.** A campaign created by this version is ``tallied`` from its first record on and
its figures come from here; one created before keeps the aggregation (exact, slower) until
``flask recount-reports`` rebuilds its tallies from its records. Lifecycle flows' messages are
counted by their flows (:mod:`engine.flows`), never here.

**Exactness.** Each tally write follows its record write; a process killed between the two (a window
of one database call; for a fold, one chunk of :data:`FOLD_CHUNK` records) leaves the tally short by
what that write changed: the records stay right, and
``flask recount-reports <campaign id>`` rebuilds the tallies from them (run it while nothing writes
to the campaign, or it can miss what arrives during the rebuild). ``tests/test_tallies.py`` checks
the tallies equal the aggregation over the records after sends, receipts, retries, unsubscribes,
opens, clicks and bursts.
"""
from pymongo import UpdateOne

from models import CampaignTally, Delivery

COUNTERS = ("pending", "sent", "delivered", "failed", "handedOff", "bounced", "hardBounced", "complaints",
            "unsubscribed", "opens", "uniqueOpens", "humanOpens", "clicks", "uniqueClicks", "humanClicks")
HOUR_COUNTERS = ("opens", "humanOpenEvents", "clicks", "humanClickEvents")
LINK_COUNTERS = ("total", "unique", "uniqueHuman")
# what an open or click adds to its record for the tallies (engine.tracking.event_update), and the fold's
DUE, VERSION, HOURS, LINK_CLICKS, FOLDED = "tallyDue", "tallyVersion", "eventHours", "linkClicks", "folded"
FOLD_CHUNK = 200  # records whose increments go to the tallies in one write
_TRACKED = ("opens", "humanOpens", "clicks", "humanClicks")
_FOLD_PROJECTION = dict.fromkeys(("campaign", "variant", "testGroup", "flow", *_TRACKED, "clickedLinks",
                                  "humanLinks", LINK_CLICKS, HOURS, FOLDED, VERSION), 1)


def _tallies():
    return CampaignTally._get_collection()


def key_of(record):
    """The tally key ``(campaign, variant, test group)`` of a delivery record; None for a flow's message."""
    if record.get("flow") is not None:
        return None
    return record["campaign"], record.get("variant"), bool(record.get("testGroup"))


def hour_of(iso_hour):
    """``YYYYMMDDHH`` of an ISO hour (``2026-01-01T09:00:00Z``, as events are stamped)."""
    return f"{iso_hour[0:4]}{iso_hour[5:7]}{iso_hour[8:10]}{iso_hour[11:13]}"


def _hour_iso(hour):
    return f"{hour[0:4]}-{hour[4:6]}-{hour[6:8]}T{hour[8:10]}:00:00Z"


def _write(key, hour, counts):
    """``(filter, update)`` adding ``counts`` to the document of ``key`` (and ``hour``)."""
    campaign, variant, test = key
    ident = f"{campaign}:{'-' if variant is None else variant}:{int(test)}" + (f":{hour}" if hour else "")
    return {"_id": ident}, {"$inc": counts, "$setOnInsert": {"campaign": campaign, "variant": variant, "test": test,
                                                              "hour": hour}}


def _apply(writes):
    """``[(key, hour, {counter: delta})]`` added (upserted): one write for one document, else one bulk
    write; keys that are None and zero deltas are left out."""
    operations = []
    for key, hour, counts in writes:
        counts = {name: value for name, value in counts.items() if value}
        if key is not None and counts:
            operations.append(_write(key, hour, counts))
    if len(operations) == 1:
        _tallies().update_one(*operations[0], upsert=True)
    elif operations:
        _tallies().bulk_write([UpdateOne(*operation, upsert=True) for operation in operations], ordered=False)


def add(deltas):
    """``{key: {counter: delta}}`` added to the keys' records' states documents."""
    _apply([(key, None, counts) for key, counts in deltas.items()])


def add_hours(key, by_hour):
    """``{hour: {counter: delta}}`` added to one key's hour documents."""
    _apply([(key, hour, counts) for hour, counts in by_hour.items()])


def event_fields(kind, hour, human, link=None):
    """The ``$inc`` an event of ``kind`` (``"open"``/``"click"``) in ``hour`` (``YYYYMMDDHH``) adds to
    its record for the fold (with ``$set`` ``{DUE: True}`` beside it)."""
    name = "Open" if kind == "open" else "Click"
    counts = {f"{HOURS}.{hour}.{kind}s": 1, VERSION: 1}
    if human:
        counts[f"{HOURS}.{hour}.human{name}Events"] = 1
    if link is not None:
        counts[f"{LINK_CLICKS}.{link}"] = 1
    return counts


def _state(doc):
    """What a record's tracking says to its tallies (the shape of its ``folded``)."""
    return {**{name: doc.get(name) or 0 for name in _TRACKED}, "clickedLinks": sorted(doc.get("clickedLinks") or ()),
            "humanLinks": sorted(doc.get("humanLinks") or ()), LINK_CLICKS: dict(doc.get(LINK_CLICKS) or {}),
            HOURS: {hour: dict(values) for hour, values in (doc.get(HOURS) or {}).items()}}


def fold_deltas(before, after):
    """``{hour or None: {counter: delta}}`` a record adds to its tallies going from state ``before``
    to ``after`` (:func:`_state`; ``{}`` is a record never folded)."""
    def became(name):  # the recipient's first one (1), one no longer (-1, a burst re-marked), or no change
        return int(bool(after[name])) - int(bool(before.get(name)))

    states = {"uniqueOpens": became("opens"), "humanOpens": became("humanOpens"),
              "uniqueClicks": became("clicks"), "humanClicks": became("humanClicks")}
    clicked_before, human_before = set(before.get("clickedLinks") or ()), set(before.get("humanLinks") or ())
    counts_before = before.get(LINK_CLICKS) or {}
    for link in set(after[LINK_CLICKS]) | set(counts_before):
        states[f"links.{link}.total"] = after[LINK_CLICKS].get(link, 0) - counts_before.get(link, 0)
    for link in set(after["clickedLinks"]) | clicked_before:
        states[f"links.{link}.unique"] = int(link in after["clickedLinks"]) - int(link in clicked_before)
    for link in set(after["humanLinks"]) | human_before:
        states[f"links.{link}.uniqueHuman"] = int(link in after["humanLinks"]) - int(link in human_before)
    out = {None: states}
    hours_before = before.get(HOURS) or {}
    for hour in set(after[HOURS]) | set(hours_before):
        now, then = after[HOURS].get(hour, {}), hours_before.get(hour, {})
        out[hour] = {name: now.get(name, 0) - then.get(name, 0) for name in HOUR_COUNTERS}
    return out


def _add_folded(pending, key, deltas):
    for hour, counts in deltas.items():
        summed = pending.setdefault((key, hour), {})
        for name, value in counts.items():
            summed[name] = summed.get(name, 0) + value


def fold(campaign_pks=None):
    """Fold the due records (of these campaigns, else all) into their tallies; the number folded.

    Each record is moved from the state it last folded to its state now by a compare-and-set on its
    ``tallyVersion`` (which every event raises): of two folds reading it, one wins; an event recorded
    after the read leaves it due. The increments of up to :data:`FOLD_CHUNK` records go in one write."""
    query = {DUE: True}
    if campaign_pks is not None:
        query["campaign"] = {"$in": list(campaign_pks)}
    return fold_records(Delivery._get_collection().find(query, _FOLD_PROJECTION))


def fold_records(docs):
    """Fold these records as read (:func:`fold`'s work; a record changed since it was read is left)."""
    records = Delivery._get_collection()
    pending, in_chunk, folded = {}, 0, 0
    for doc in docs:
        after = _state(doc)
        moved = records.update_one({"_id": doc["_id"], VERSION: doc.get(VERSION)},
                                   {"$set": {FOLDED: after}, "$unset": {DUE: ""}, "$inc": {VERSION: 1}})
        if not moved.modified_count:
            continue  # folded meanwhile by another, or an event landed: due again
        _add_folded(pending, key_of(doc), fold_deltas(doc.get(FOLDED) or {}, after))
        in_chunk += 1
        folded += 1
        if in_chunk == FOLD_CHUNK:
            _apply([(key, hour, counts) for (key, hour), counts in pending.items()])
            pending, in_chunk = {}, 0
    _apply([(key, hour, counts) for (key, hour), counts in pending.items()])
    return folded


def has_due():
    """Whether any record has opens or clicks not folded into its tallies yet."""
    return Delivery._get_collection().find_one({DUE: True}, {"_id": 1}) is not None


# a record's tracking state as the fold keeps it (:func:`_state`), as an update pipeline's stage
FOLDED_NOW = {"$set": {FOLDED: {
    **{name: {"$ifNull": [f"${name}", 0]} for name in _TRACKED},
    "clickedLinks": {"$ifNull": ["$clickedLinks", []]}, "humanLinks": {"$ifNull": ["$humanLinks", []]},
    LINK_CLICKS: {"$ifNull": [f"${LINK_CLICKS}", {}]}, HOURS: {"$ifNull": [f"${HOURS}", {}]}}}}


def mark_folded(query):
    """Mark the records ``query`` selects as folded as they are now (their tallies were rebuilt from
    them, or already count them); the number marked."""
    records = Delivery._get_collection()
    marked = records.update_many(query, [FOLDED_NOW]).modified_count
    records.update_many({**query, DUE: True}, {"$unset": {DUE: ""}})
    return marked


def rows(campaign_pks, test_only=False):
    """The tally documents of these campaigns (of their A/B test groups only, with ``test_only``),
    after folding their due records."""
    fold(campaign_pks)
    query = {"campaign": {"$in": list(campaign_pks)}}
    if test_only:
        query["test"] = True
    return list(_tallies().find(query))


def _summed(out, group, values, names):
    row = out.setdefault(group, dict.fromkeys(names, 0))
    for name in names:
        row[name] += values.get(name, 0)


def totals(docs):
    """The counters of ``docs`` summed (the keys of :data:`COUNTERS`)."""
    out = {}
    for doc in docs:
        _summed(out, None, doc, COUNTERS)
    return out.get(None, dict.fromkeys(COUNTERS, 0))


def links(docs):
    """``{(variant, link index): {total, unique, uniqueHuman}}`` summed over ``docs``."""
    out = {}
    for doc in docs:
        for index, values in (doc.get("links") or {}).items():
            _summed(out, (doc.get("variant"), int(index)), values, LINK_COUNTERS)
    return out


def hours(docs):
    """``{ISO hour: {opens, humanOpenEvents, clicks, humanClickEvents}}`` summed over ``docs``."""
    out = {}
    for doc in docs:
        if doc.get("hour"):
            _summed(out, _hour_iso(doc["hour"]), doc, HOUR_COUNTERS)
    return out


def replace(campaign_pk, states, by_hour):
    """The campaign's tallies replaced: ``states`` ``{key: counters}`` (records' states, and opens and
    clicks beyond the event logs) and ``by_hour`` ``{(key, hour): counters}`` — :func:`engine.reports.recount`."""
    _tallies().delete_many({"campaign": campaign_pk})
    _apply([(key, None, counts) for key, counts in states.items()]
           + [(key, hour, counts) for (key, hour), counts in by_hour.items()])
