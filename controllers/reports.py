"""Campaign reports: a campaign's figures, links and series; one row per campaign over a period; as
JSON or CSV. Every figure comes from ``engine.reports.figures`` (the campaign list's too)."""
import csv
import io

import engine
from engine import rfm
from controllers.campaigns import get_campaign
from controllers.common import paginate
from controllers.export import spreadsheet_safe
from dates import iso_utc
from models import Campaign
from schemas.campaign import ab_test_out

ENGAGEMENT = ("opens", "clicks")
PERIOD_COLUMNS = ("campaignId", "name", "status", "startedAt")
PERIOD_CHUNK = 500


def campaign_report(campaign_id):
    """The report of one campaign (as ``CampaignReportOut`` dumps it)."""
    campaign = get_campaign(campaign_id)
    docs = engine.reports.tally_docs(campaign)
    return {**engine.reports.figures([campaign], docs)[campaign.pk], "campaign_id": campaign.pk,
            "name": campaign.name, "subject": campaign.subject or campaign.name, "status": campaign.status,
            "started_at": campaign.started_at, "completed_at": campaign.completed_at,
            "attribution_days": campaign.attribution_days, "attribute_on": campaign.attribute_on,
            "links": engine.reports.links(campaign, docs), "series": engine.reports.series(campaign, docs),
            "variants": engine.reports.variants(campaign, docs), "ab_test": ab_test_out(campaign.ab_test)}


def _flat(figures):
    """``[(metric, value)]`` of a figures dict in the API's names (``opens.uniqueHuman`` …)."""
    from schemas.campaign import FiguresOut

    dumped = FiguresOut().dump(figures)
    pairs = []
    for key, value in dumped.items():
        if isinstance(value, dict):
            pairs.extend((f"{key}.{inner}", value[inner]) for inner in value)
        else:
            pairs.append((key, value))
    return pairs


def _csv(rows):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def report_csv(report, dumped):
    """The report as CSV, one value per row (``section,key,metric,value``): the same numbers as the
    JSON (``dumped``), ``summary`` rows, then a row per link and metric, then per series point."""
    rows = [("section", "key", "metric", "value")]
    rows.extend(("summary", "", metric, value) for metric, value in _flat(report))
    for link in dumped["links"]:
        key = f"{link['variant']}{link['index']}" if link["variant"] else link["index"]
        rows.extend(("link", key, metric, link[metric]) for metric in ("total", "unique", "uniqueHuman"))
        rows.append(("link", key, "url", spreadsheet_safe(link["url"])))
    for raw, variant in zip(report["variants"], dumped["variants"]):
        rows.extend(("variant", variant["variant"], metric, value) for metric, value in _flat(raw))
        rows.extend(("variant", variant["variant"], f"metric.{part}", variant["metric"][part])
                    for part in ("value", "low", "high"))
        rows.append(("variant", variant["variant"], "probabilityBest", variant["probabilityBest"]))
    for point in dumped["series"]:
        rows.extend(("series", point["at"], metric, point[metric])
                    for metric in ("opens", "humanOpens", "clicks", "humanClicks"))
    return _csv(rows)


def _period(query):
    return Campaign.objects(started_at__gte=query["date_from"], started_at__lt=query["date_to"]).order_by(
        "started_at", "id")


def _rows(campaigns):
    figures = engine.reports.figures(campaigns)
    return [{**figures[c.pk], "campaign_id": c.pk, "name": c.name, "status": c.status, "started_at": c.started_at}
            for c in campaigns]


def period_page(query):
    """One page of the period's rows (campaigns that started sending in ``[from, to)``)."""
    page = paginate(_period(query), query["page"], query["per_page"])
    return {**page, "items": _rows(page["items"])}


def period_csv(query):
    """Every row of the period as CSV, a chunk of campaigns at a time (a generator of text)."""
    campaigns = _period(query).exclude("rules")
    header = None
    chunk = []
    for campaign in campaigns:
        chunk.append(campaign)
        if len(chunk) == PERIOD_CHUNK:
            text, header = _period_chunk(chunk, header)
            yield text
            chunk = []
    text, header = _period_chunk(chunk, header)
    yield text


def _period_chunk(campaigns, header):
    rows = []
    for row in _rows(campaigns):
        metrics = _flat(row)
        if header is None:
            header = PERIOD_COLUMNS + tuple(metric for metric, _ in metrics)
            rows.append(header)
        rows.append((str(row["campaign_id"]), spreadsheet_safe(row["name"]), row["status"],
                     iso_utc(row["started_at"]), *(value for _, value in metrics)))
    if header is None:  # an empty period still has its header
        header = PERIOD_COLUMNS + tuple(metric for metric, _ in _flat(engine.reports.empty_figures()))
        rows.append(header)
    return _csv(rows), header


def rfm_summary():
    """The last RFM pass's cuts and the segments' sizes now (counted by the database)."""
    return rfm.summary()
