"""Insights from numbers the database computes; the model only words them, from aggregates only."""
import re

from controllers.campaigns import get_campaign, stats
from errors import ApiError
from models import Order
from services import gemini

WEEKDAYS = {1: "Sunday", 2: "Monday", 3: "Tuesday", 4: "Wednesday", 5: "Thursday", 6: "Friday", 7: "Saturday"}
RATIONALE_INSTRUCTION = (
    "In one sentence of at most 30 words, explain to a marketer why the given weekday and hour (UTC) is "
    "a good time to send a campaign, using only the order counts given. Do not invent other numbers."
)


def send_time(with_rationale=False):
    """The weekday and hour (UTC) with the most orders, from a histogram computed by the database.

    The model, when asked for a rationale, sees only the aggregate counts: never a customer.
    """
    rows = Order._get_collection().aggregate([
        {"$group": {"_id": {"day": {"$dayOfWeek": "$date"}, "hour": {"$hour": "$date"}}, "orders": {"$sum": 1}}},
    ])
    histogram = sorted(
        ({"day_of_week": r["_id"]["day"], "weekday": WEEKDAYS[r["_id"]["day"]], "hour": r["_id"]["hour"],
          "orders": r["orders"]} for r in rows),
        key=lambda slot: (-slot["orders"], slot["day_of_week"], slot["hour"]),
    )
    result = {"best": histogram[0] if histogram else None, "based_on_orders": sum(s["orders"] for s in histogram),
              "timezone": "UTC", "histogram": histogram, "rationale": None}
    if with_rationale and histogram:
        best = histogram[0]
        facts = (f"Best slot: {best['weekday']} {best['hour']:02d}:00 UTC with {best['orders']} of "
                 f"{result['based_on_orders']} orders. Next: " + ", ".join(
                     f"{s['weekday']} {s['hour']:02d}:00 ({s['orders']})" for s in histogram[1:4]))
        try:
            result["rationale"] = gemini.generate(facts, system=RATIONALE_INSTRUCTION).text.strip()
        except ApiError as exc:  # the computed answer stands without the model
            result["rationale_error"] = exc.message
    return result


SUMMARY_INSTRUCTION = (
    "You summarise an email campaign's results for a marketer in two or three plain sentences. Use only "
    "the numbers given, written exactly as given; do not compute or invent any other number."
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _rate(part, whole):
    return round(100 * part / whole, 1) if whole else 0.0


def _numbers_in(text):
    return {match.replace(",", "") for match in _NUMBER.findall(text)}


def _allowed_numbers(*values):
    allowed = set()
    for value in values:
        if isinstance(value, float):  # a rate may be written 80.0 or 80
            allowed |= {f"{value:.1f}", str(round(value))}
        else:
            allowed.add(str(value))
    return allowed


def campaign_summary(campaign_id):
    """A plain-language summary: the server computes every number, the model only phrases them,
    and a text containing any number not among them is refused (502)."""

    campaign = get_campaign(campaign_id)
    numbers = stats(campaign)
    attempted = numbers["sent"] + numbers["delivered"] + numbers["failed"]
    rates = {"delivered_percent": _rate(numbers["delivered"], attempted),
             "failed_percent": _rate(numbers["failed"], attempted)}
    reasons = numbers["failure_reasons"][:3]
    opens, clicks = numbers["opens"]["unique_human"], numbers["clicks"]["unique_human"]
    facts = "\n".join([
        f"Campaign: {campaign.name} ({campaign.status})",
        f"Audience: {numbers['audience_size'] or 0}; sent and awaiting receipt: {numbers['sent']}; "
        f"delivered: {numbers['delivered']}; failed: {numbers['failed']}; pending: {numbers['pending']}",
        f"Delivered: {rates['delivered_percent']}%; failed: {rates['failed_percent']}%",
        "Top failure reasons: " + (", ".join(f"{r['reason']} ({r['count']})" for r in reasons) or "none"),
        f"People who opened (suspected bots left out): {opens}; who clicked: {clicks}",
        f"Attributed revenue: {numbers['revenue']:g} from {numbers['orders']} orders; "
        f"revenue per recipient: {numbers['revenue_per_recipient']:g}",
    ])
    text = gemini.generate(facts, system=SUMMARY_INSTRUCTION).text.strip()
    allowed = _allowed_numbers(
        numbers["audience_size"] or 0, numbers["sent"], numbers["delivered"], numbers["failed"],
        numbers["pending"], numbers["total"], attempted, rates["delivered_percent"], rates["failed_percent"],
        *[r["count"] for r in reasons], opens, clicks, numbers["orders"], numbers["revenue"],
        numbers["revenue_per_recipient"], f"{numbers['revenue']:g}", f"{numbers['revenue_per_recipient']:g}",
    ) | _numbers_in(campaign.name) | _numbers_in(" ".join(str(r["reason"]) for r in reasons))
    stray = sorted(_numbers_in(text) - allowed)
    if stray:
        raise ApiError(502, "The AI summary contained numbers that are not in the campaign's statistics",
                       {"summary": [f"Unexpected number(s): {', '.join(stray)}"]})
    return {
        "campaign_id": campaign.pk,
        "stats": {"audience_size": numbers["audience_size"] or 0, "sent": numbers["sent"],
                  "delivered": numbers["delivered"], "failed": numbers["failed"], "pending": numbers["pending"],
                  "failure_reasons": reasons, "opens": numbers["opens"], "clicks": numbers["clicks"],
                  "revenue": numbers["revenue"], "orders": numbers["orders"],
                  "revenue_per_recipient": numbers["revenue_per_recipient"], **rates},
        "summary": text,
    }
