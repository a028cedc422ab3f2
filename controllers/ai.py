"""The AI assistant. The model gets only what a request needs and never any write access."""
from services import gemini

SYSTEM_INSTRUCTION = (
    "You are the assistant of a CRM used by marketers: customers, their orders, audience segments "
    "built from rules, and message campaigns. Help with marketing tasks for this CRM: audience ideas, "
    "campaign messages, timing, and reading campaign results. You cannot see or change the CRM's "
    "data; say so when asked to. Be concise and practical."
)


def ask(prompt):
    """Answer a marketer's free-form question."""
    return gemini.generate(prompt, system=SYSTEM_INSTRUCTION)


WEEKDAYS = {1: "Sunday", 2: "Monday", 3: "Tuesday", 4: "Wednesday", 5: "Thursday", 6: "Friday", 7: "Saturday"}
RATIONALE_INSTRUCTION = (
    "In one sentence of at most 30 words, explain to a marketer why the given weekday and hour (UTC) is "
    "a good time to send a campaign, using only the order counts given. Do not invent other numbers."
)


def send_time(with_rationale=False):
    """The weekday and hour (UTC) with the most orders, from a histogram computed by the database.

    The model, when asked for a rationale, sees only the aggregate counts: never a customer.
    """
    from models import Order

    rows = Order._get_collection().aggregate([
        {"$group": {"_id": {"day": {"$dayOfWeek": "$date"}, "hour": {"$hour": "$date"}}, "orders": {"$sum": 1}}},
    ])
    histogram = sorted(
        ({"dayOfWeek": r["_id"]["day"], "weekday": WEEKDAYS[r["_id"]["day"]], "hour": r["_id"]["hour"],
          "orders": r["orders"]} for r in rows),
        key=lambda slot: (-slot["orders"], slot["dayOfWeek"], slot["hour"]),
    )
    result = {"best": histogram[0] if histogram else None, "basedOnOrders": sum(s["orders"] for s in histogram),
              "timezone": "UTC", "histogram": histogram, "rationale": None}
    if with_rationale and histogram:
        from errors import ApiError

        best = histogram[0]
        facts = (f"Best slot: {best['weekday']} {best['hour']:02d}:00 UTC with {best['orders']} of "
                 f"{result['basedOnOrders']} orders. Next: " + ", ".join(
                     f"{s['weekday']} {s['hour']:02d}:00 ({s['orders']})" for s in histogram[1:4]))
        try:
            result["rationale"] = gemini.generate(facts, system=RATIONALE_INSTRUCTION).text.strip()
        except ApiError as exc:  # the computed answer stands without the model
            result["rationaleError"] = exc.message
    return result
