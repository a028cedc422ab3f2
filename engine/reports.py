"""Campaign figures, all computed by aggregation in the database and all from :func:`figures`, so the
campaign list, a campaign's stats, its report, its CSV and the period report never disagree.

- Delivery figures are :func:`engine.stats`'s (they add up: ``pending + sent + delivered + failed +
  cancelled = total``), plus ``handedOff`` (given to the vendor: SENT, DELIVERED, or FAILED after the
  hand-off, as bounces are), ``bounced``, ``complaints`` and ``unsubscribed`` (through this
  campaign's link).
- Opens and clicks: ``unique`` recipients with at least one, ``uniqueHuman`` with at least one not
  suspected to be a bot, ``total`` events (bots included).
- Revenue: the amounts of the orders attributed to the campaign (:mod:`engine.attribution`), how
  many, and per recipient handed off.

A campaign made by this version is ``tallied``: its delivery, open and click figures, links and
series are read from its running tallies (:mod:`engine.tallies`, a few small documents), not
aggregated from its records; :func:`recount` rebuilds those tallies from the records by the
aggregations below, which also still answer for campaigns made before tallies.
"""
from datetime import timedelta

from engine import abtest, tallies
from models import Campaign, Delivery, Order
from models.campaign import CANCELLED
from models.delivery import DELIVERED, FAILED, PENDING, SENT

HOURLY_FOR = timedelta(hours=48)  # the series is hourly for the first 48 hours after sending starts, then daily


def _is(field, value):
    return {"$cond": [{"$eq": [field, value]}, 1, 0]}


def _present(field):
    return {"$cond": [{"$gt": [field, None]}, 1, 0]}


def _positive(field):
    return {"$cond": [{"$gt": [field, 0]}, 1, 0]}


_GROUP = {
    **{status.lower(): {"$sum": _is("$status", status)} for status in (PENDING, SENT, DELIVERED, FAILED)},
    "handedOff": {"$sum": _present("$sentAt")},
    "bounced": {"$sum": _present("$bounce")},
    "hardBounced": {"$sum": _is("$bounce", "hard")},
    "complaints": {"$sum": _present("$complainedAt")},
    "unsubscribed": {"$sum": _present("$unsubscribedAt")},
    "opens": {"$sum": "$opens"}, "uniqueOpens": {"$sum": _positive("$opens")},
    "humanOpens": {"$sum": _positive("$humanOpens")},
    "clicks": {"$sum": "$clicks"}, "uniqueClicks": {"$sum": _positive("$clicks")},
    "humanClicks": {"$sum": _positive("$humanClicks")},
}


def _deliveries():
    return Delivery._get_collection()


def _counted(campaign_pks):
    rows = _deliveries().aggregate([
        {"$match": {"campaign": {"$in": list(campaign_pks)}}},
        {"$group": {"_id": "$campaign", **_GROUP}},
    ])
    return {row.pop("_id"): row for row in rows}


def _revenue(campaign_pks):
    rows = Order._get_collection().aggregate([
        {"$match": {"attribution.campaign": {"$in": list(campaign_pks)}}},
        {"$group": {"_id": "$attribution.campaign", "revenue": {"$sum": "$amount"}, "orders": {"$sum": 1}}},
    ])
    return {row["_id"]: row for row in rows}


def delivery_stats(campaign, by_status):
    """The delivery counts of :func:`engine.stats` from ``{status: count}`` (see there)."""
    counts = {key.lower(): by_status.get(key, 0) for key in (PENDING, SENT, DELIVERED, FAILED)}
    suppressed = campaign.suppressed or 0
    reached = sum(counts.values()) + suppressed
    audience = reached if campaign.planned else max(campaign.audience_size or 0, reached)
    waiting = counts["pending"] + audience - reached
    cancelled = waiting if campaign.status == CANCELLED else 0
    counts["pending"] = waiting - cancelled
    return {"audience_size": audience, **counts, "cancelled": cancelled, "awaiting_receipts": counts["sent"],
            "suppressed": suppressed, "total": audience - suppressed}


def tally_docs(campaign):
    """The tally documents of a tallied campaign (None for one aggregated from its records): read once
    by a report and handed to each of its parts."""
    return tallies.rows([campaign.pk]) if campaign.tallied else None


def _tallied(docs, by=lambda doc: doc["campaign"]):
    """``{by(doc): summed counters}`` of tally documents."""
    grouped = {}
    for doc in docs:
        grouped.setdefault(by(doc), []).append(doc)
    return {key: tallies.totals(group) for key, group in grouped.items()}


def figures(campaigns, docs=None):
    """``{campaign pk: figures}`` for campaign documents: a read of the tallied ones' tallies (unless
    ``docs`` holds them), an aggregation over the others' records, and one over the orders, whatever
    their number."""
    pks = [c.pk for c in campaigns]
    tallied = [c.pk for c in campaigns if c.tallied]
    others = [c.pk for c in campaigns if not c.tallied]
    if tallied and docs is None:
        docs = tallies.rows(tallied)
    counted = {**(_tallied(docs) if tallied else {}), **(_counted(others) if others else {})}
    revenue = _revenue(pks) if pks else {}
    return {c.pk: _one(c, counted.get(c.pk, {}), revenue.get(c.pk, {})) for c in campaigns}


def empty_figures():
    """The figures of a campaign with no recipients yet (every key, every value zero)."""
    return _one(Campaign(), {}, {})


def _one(campaign, row, money):
    by_status = {status: row.get(status.lower(), 0) for status in (PENDING, SENT, DELIVERED, FAILED)}
    handed_off = row.get("handedOff", 0)
    amount = round(money.get("revenue", 0.0), 2)
    return {
        **delivery_stats(campaign, by_status),
        "handed_off": handed_off,
        "bounced": row.get("bounced", 0), "hard_bounced": row.get("hardBounced", 0),
        "complaints": row.get("complaints", 0), "unsubscribed": row.get("unsubscribed", 0),
        "opens": {"unique": row.get("uniqueOpens", 0), "unique_human": row.get("humanOpens", 0),
                  "total": row.get("opens", 0)},
        "clicks": {"unique": row.get("uniqueClicks", 0), "unique_human": row.get("humanClicks", 0),
                   "total": row.get("clicks", 0)},
        "revenue": amount,
        "orders": money.get("orders", 0),
        "revenue_per_recipient": round(amount / handed_off, 4) if handed_off else 0.0,
    }


def by_variant(campaign, docs=None):
    """Per A/B variant (by index), over its test group (what the decision compares; the winner's send
    to the rest is in the campaign's figures): its figures, and ``revenue_sumsq`` (the sum of squared
    revenue per recipient, for the revenue rule's standard error). Two aggregations."""
    if not campaign.variants:
        return []
    if campaign.tallied:
        tested = [doc for doc in docs if doc.get("test")] if docs is not None else tallies.rows([campaign.pk], True)
        rows = _tallied(tested, by=lambda doc: doc.get("variant"))
    else:
        rows = {row.pop("_id"): row for row in _deliveries().aggregate([
            {"$match": {"campaign": campaign.pk, "testGroup": True}},
            {"$group": {"_id": "$variant", **_GROUP}},
        ])}
    money = {row["_id"]: row for row in Order._get_collection().aggregate([
        {"$match": {"attribution.campaign": campaign.pk, "attribution.testGroup": True}},
        {"$group": {"_id": {"delivery": "$attribution.delivery", "variant": "$attribution.variant"},
                    "amount": {"$sum": "$amount"}, "orders": {"$sum": 1}}},
        {"$group": {"_id": "$_id.variant", "revenue": {"$sum": "$amount"}, "orders": {"$sum": "$orders"},
                    "sumsq": {"$sum": {"$multiply": ["$amount", "$amount"]}}}},
    ])}
    return [{**_one(campaign, rows.get(index, {}), money.get(index, {})),
             "revenue_sumsq": money.get(index, {}).get("sumsq", 0.0)} for index in range(len(campaign.variants))]


def variants(campaign, docs=None):
    """The report's variants: each one's figures, its estimate of the test's metric with a 95%
    interval, and its probability to be the best now (engine.abtest). ``docs`` here and below: the
    campaign's :func:`tally_docs` when the caller has read them (else they are read)."""
    rows = by_variant(campaign, docs)
    if not rows:
        return []
    metric = campaign.ab_test["metric"]
    arms = abtest.arms(rows, metric)
    chances = abtest.probabilities(arms, metric, seed=str(campaign.pk))
    out = []
    for index, (row, arm) in enumerate(zip(rows, arms)):
        value, low, high = abtest.estimate(arm, metric)
        out.append({**row, "variant": abtest.LETTERS[index], "subject": campaign.variants[index]["subject"],
                    "metric": {"name": metric, "value": value, "low": low, "high": high},
                    "probability_best": chances[index]})
    return out


def links(campaign, docs=None):
    """Per tracked link of each variant (or of the campaign): ``{variant, index, url, total, unique,
    uniqueHuman}`` (the tallies, or one aggregation)."""
    if campaign.tallied:
        found = tallies.links(docs if docs is not None else tallies.rows([campaign.pk]))
    else:
        found = {}
        for row in _link_rows(campaign.pk, by_test=False):
            found[(row["_id"].get("variant"), row["_id"]["link"])] = row
    lists = ([(index, variant["links"]) for index, variant in enumerate(campaign.variants)] if campaign.variants
             else [(None, campaign.links or ())])
    out = []
    for variant, urls in lists:
        for index, url in enumerate(urls):
            row = found.get((variant, index), {})
            out.append({"variant": abtest.LETTERS[variant] if variant is not None else None, "index": index,
                        "url": url, "total": row.get("total", 0), "unique": row.get("unique", 0),
                        "unique_human": row.get("uniqueHuman", 0)})
    return out


def series(campaign, docs=None):
    """Opens and clicks over time (raw and human): hourly for the first 48 hours after sending
    started, daily after (by the hour each event was stamped with when it was recorded: the tallies'
    hours, or grouped by the database; days folded from its hours)."""
    if campaign.tallied:
        hours = tallies.hours(docs if docs is not None else tallies.rows([campaign.pk]))
        rows = [{"_id": {"hour": hour, "kind": kind}, "n": values[f"{kind}s"],
                 "human": values[f"human{kind.title()}Events"]}
                for hour, values in hours.items() for kind in ("open", "click")]
    else:
        rows = _series_rows(campaign.pk, by_test=False)
    start = campaign.started_at
    hourly_until = (start + HOURLY_FOR).strftime("%Y-%m-%dT%H:00:00Z") if start else ""
    buckets = {}
    for row in rows:
        hour, kind = row["_id"]["hour"], row["_id"]["kind"]
        key = (hour, "hour") if hour < hourly_until else (hour[:10] + "T00:00:00Z", "day")
        bucket = buckets.setdefault(key, {"opens": 0, "human_opens": 0, "clicks": 0, "human_clicks": 0})
        bucket[f"{kind}s"] += row["n"]
        bucket[f"human_{kind}s"] += row["human"]
    return [{"at": at, "granularity": unit, **values} for (at, unit), values in sorted(buckets.items())]


def _link_rows(campaign_pk, by_test):
    """Per (variant[, test group], link): ``total`` clicks, ``unique`` recipients, ``uniqueHuman`` ones
    with a click not suspected to be a bot (from the records' event logs)."""
    test = {"test": {"$eq": ["$testGroup", True]}} if by_test else {}
    return _deliveries().aggregate([
        {"$match": {"campaign": campaign_pk, "clicks": {"$gt": 0}}},
        {"$project": {"variant": 1, "testGroup": 1, "events": 1}},
        {"$unwind": "$events"},
        {"$match": {"events.kind": "click"}},
        {"$group": {"_id": {"variant": "$variant", **test, "link": "$events.link", "delivery": "$_id"},
                    "n": {"$sum": 1}, "human": {"$sum": {"$cond": ["$events.bot", 0, 1]}}}},
        {"$group": {"_id": {"variant": "$_id.variant", **({"test": "$_id.test"} if by_test else {}),
                            "link": "$_id.link"},
                    "total": {"$sum": "$n"}, "unique": {"$sum": 1}, "uniqueHuman": {"$sum": _positive("$human")}}},
    ])


def _series_rows(campaign_pk, by_test):
    """Per (hour, kind[, variant, test group]): events ``n`` and ``human`` ones (from the event logs)."""
    extra = {"variant": "$variant", "test": {"$eq": ["$testGroup", True]}} if by_test else {}
    return _deliveries().aggregate([
        {"$match": {"campaign": campaign_pk, "$or": [{"opens": {"$gt": 0}}, {"clicks": {"$gt": 0}}]}},
        {"$project": {"events": 1, "variant": 1, "testGroup": 1}},
        {"$unwind": "$events"},
        {"$group": {"_id": {"hour": "$events.hour", "kind": "$events.kind", **extra},
                    "n": {"$sum": 1}, "human": {"$sum": {"$cond": ["$events.bot", 0, 1]}}}},
    ])


def recount(campaign):
    """Rebuild a campaign's tallies from its records (three aggregations over them) and mark it
    ``tallied``; returns the number of tally documents written. The series' hours come from the event
    logs, and what the records count beyond their capped logs is kept in the states documents, so the
    totals stay the records' exact counts. Run it while nothing writes to the campaign: what changes
    during the aggregations may be missed (engine.tallies)."""
    states, by_hour = {}, {}

    def count(table, key, name, value):
        found = table.setdefault(key, {})
        found[name] = found.get(name, 0) + value

    def key_of(group):  # (mongomock leaves a false ``test`` out of a group's _id: groups may repeat)
        return campaign.pk, group.get("variant"), bool(group.get("test"))

    for row in _deliveries().aggregate([
            {"$match": {"campaign": campaign.pk}},
            {"$group": {"_id": {"variant": "$variant", "test": {"$eq": ["$testGroup", True]}}, **_GROUP}}]):
        group = row.pop("_id")
        for name, value in row.items():
            count(states, key_of(group), name, value)
    for row in _link_rows(campaign.pk, by_test=True):
        for name in tallies.LINK_COUNTERS:
            count(states, key_of(row["_id"]), f"links.{row['_id']['link']}.{name}", row[name])
    for row in _series_rows(campaign.pk, by_test=True):
        group = row["_id"]
        key, hour, kind = key_of(group), tallies.hour_of(group["hour"]), group["kind"]
        count(by_hour, (key, hour), f"{kind}s", row["n"])
        count(by_hour, (key, hour), f"human{kind.title()}Events", row["human"])
        count(states, key, f"{kind}s", -row["n"])  # the states documents keep what is beyond the logs
    tallies.replace(campaign.pk, states, by_hour)
    tallies.mark_folded({"campaign": campaign.pk})  # their opens and clicks are counted now: none is due
    Campaign.objects(pk=campaign.pk).update_one(set__tallied=True)
    return len(states) + len(by_hour)
