"""A campaign's figures kept as running tallies, so its report reads a few small documents instead of
aggregating every delivery record and event (:mod:`engine.reports`).

**Documents** (``campaign_tallies``), small and bounded, per (campaign, A/B variant, test group or not):

- one for its records' states, ``_id`` ``"<campaign>:<variant or ->:<0|1>"``: ``pending``, ``sent``,
  ``delivered``, ``failed``, ``handedOff``, ``bounced``, ``hardBounced``, ``complaints``,
  ``unsubscribed``;
- one per hour its recipients opened or clicked (``…:<YYYYMMDDHH>``, ``hour`` set): ``opens`` and
  ``clicks`` (events), ``humanOpenEvents`` and ``humanClickEvents`` (the series' human figures),
  ``uniqueOpens``/``uniqueClicks`` (recipients whose first one it was) and ``humanOpens``/
  ``humanClicks`` (recipients whose first one not suspected to be a bot it was), and per link
  ``links.<i>.{total, unique, uniqueHuman}``.

A report sums them (a campaign tracked for a month has a few hundred). Each counter is ``$inc``-ed
(upserted) by the write that changed the records, with the number that write reports it changed, so
a write that changes nothing (a receipt posted twice, a chunk recorded twice) adds nothing:

- planning: ``pending`` += records inserted (:func:`engine.store.insert_records`);
- the sender's outcomes: ``pending`` → ``sent`` (+ ``handedOff``) or → ``failed``
  (:func:`engine.store.record_outcomes`, per key);
- receipts: ``pending``/``sent`` → ``delivered``/``failed``, bounces, complaints
  (:func:`engine.store.apply_receipt_groups`, :func:`engine.store.mark_complaints`);
- a retry of the failed: ``failed`` → ``pending`` (and ``handedOff`` back for those handed off);
- unsubscribes through the campaign's link; every open and click (:mod:`engine.tracking`), whose
  record update returns the record as it was, so "the recipient's first (human) open / click of
  link i" is known without another read; the burst rule's later re-marking of clicks as bots.

**Which campaigns.** A campaign created by this version is ``tallied`` from its first record on and
its figures come from here; one created before keeps the aggregation (exact, slower) until
``flask recount-reports`` rebuilds its tallies from its records. Lifecycle flows' messages are
counted by their flows (:mod:`engine.flows`), never here.

**Exactness.** Each tally write follows its record write; a process killed between the two (a window
of one database call) leaves the tally short by what that write changed: the records stay right, and
``flask recount-reports <campaign id>`` rebuilds the tallies from them (run it while nothing writes
to the campaign, or it can miss what arrives during the rebuild). ``tests/test_tallies.py`` checks
the tallies equal the aggregation over the records after sends, receipts, retries, unsubscribes,
opens, clicks and bursts.
"""
from pymongo import UpdateOne

from models import CampaignTally

COUNTERS = ("pending", "sent", "delivered", "failed", "handedOff", "bounced", "hardBounced", "complaints",
            "unsubscribed", "opens", "uniqueOpens", "humanOpens", "clicks", "uniqueClicks", "humanClicks")
HOUR_COUNTERS = ("opens", "humanOpenEvents", "clicks", "humanClickEvents")
LINK_COUNTERS = ("total", "unique", "uniqueHuman")


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
    """``{hour: {counter: delta}}`` added to one key's hour documents (tracking: nearly always one)."""
    _apply([(key, hour, counts) for hour, counts in by_hour.items()])


def rows(campaign_pks, test_only=False):
    """The tally documents of these campaigns (of their A/B test groups only, with ``test_only``)."""
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
