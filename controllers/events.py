"""The track API (``POST /api/events``) and a customer's timeline, newest first."""
from controllers.common import object_id_or_404, user_id
from engine import flows, store
from errors import ApiError
from models import Customer, CustomerEvent, Order
from models.base import utcnow
from services import events as bus


def record_event(data, actor=None):
    """Store an event about the customer named by ``customerId`` or ``email`` (404 when none is)."""
    if "customer_id" in data:
        customer = Customer.objects(pk=data["customer_id"]).only("id").first()
        if customer is None:
            raise ApiError.not_found("customer", str(data["customer_id"]))
    else:
        customer = Customer.objects(email=data["email"]).only("id").first()
        if customer is None:
            raise ApiError(404, f"No customer has the email {data['email']}",
                           {"email": ["No customer has this email."]})
    now = utcnow()
    event = CustomerEvent(customer_id=customer.pk, name=data["name"], properties=data.get("properties") or {},
                          at=data.get("at") or now, received_at=now, created_by=user_id(actor))
    event.save(force_insert=True)
    bus.publish("customer.event", customerId=str(customer.pk), name=event.name, eventId=str(event.pk))
    flows.safely(flows.event_recorded, event)
    return event


def _message_source(row):
    """What sent a delivery record: its campaign, or a flow's message its flow and step."""
    if row.get("flow"):
        return {"flow_id": str(row["flow"]), "step": row.get("flowStep")}
    return {"campaign_id": str(row["campaign"])}


def timeline(customer_id, query):
    """One page of everything that happened with a customer, newest first: orders, messages, opens,
    clicks and events. Each source is read newest first up to the page's end (an indexed, limited
    read each) and counted by the database; the page is cut from their merge."""
    pk = object_id_or_404("customer", customer_id)
    if not Customer.objects(pk=pk).count():
        raise ApiError.not_found("customer", customer_id)
    kinds = query["types"]
    page, per_page = query["page"], query["per_page"]
    depth = page * per_page
    total, items = 0, []
    if "order" in kinds:
        total += Order.objects(customer_id=pk).count()
        for doc in Order._get_collection().find({"customer": pk}).sort([("date", -1), ("_id", -1)]).limit(depth):
            item = {"type": "order", "at": doc["date"], "order_id": str(doc["_id"]), "amount": doc["amount"],
                    "key": (str(doc["_id"]), 0)}
            if doc.get("externalId"):
                item["external_id"] = doc["externalId"]
            if (doc.get("attribution") or {}).get("campaign"):
                item["campaign_id"] = str(doc["attribution"]["campaign"])
            items.append(item)
    if "message" in kinds:
        count, rows = store.customer_messages(pk, depth)
        total += count
        for row in rows:
            item = {"type": "message", "at": row["at"], "delivery_id": str(row["_id"]), "status": row["status"],
                    "key": (str(row["_id"]), 0)}
            item.update(_message_source(row))
            items.append(item)
    tracked = [kind for kind in ("open", "click") if kind in kinds]
    if tracked:
        count, rows = store.customer_tracking(pk, tracked, depth)
        total += count
        for row in rows:
            event = row["events"]
            item = {"type": event["kind"], "at": event["at"], "delivery_id": str(row["_id"]),
                    "suspected_bot": bool(event.get("bot")), "reason": event.get("reason"),
                    "key": (str(row["_id"]), row["i"])}
            item.update(_message_source(row))
            if event["kind"] == "click":
                item["link"] = event.get("link")
            items.append(item)
    if "event" in kinds:
        total += CustomerEvent.objects(customer_id=pk).count()
        for doc in CustomerEvent._get_collection().find({"customer": pk}).sort([("at", -1), ("_id", -1)]).limit(depth):
            items.append({"type": "event", "at": doc["at"], "event_id": str(doc["_id"]), "name": doc["name"],
                          "properties": doc.get("properties") or {}, "key": (str(doc["_id"]), 0)})
    if "flow.step" in kinds:
        count, rows = flows.customer_steps(pk, depth)
        total += count
        for row in rows:
            item = {"type": "flow.step", "at": row["startedAt"], "flow_id": str(row["flow"]), "step": row["step"],
                    "step_type": row["type"], "outcome": row.get("outcome"), "key": (str(row["_id"]), 0)}
            if row.get("delivery") and row["type"] == "send":
                item["delivery_id"] = str(row["delivery"])
            items.append(item)
    # newest first, then the newest record (each source's own order, so the merge's first ``depth``
    # items are among each source's first ``depth``)
    items.sort(key=lambda item: (item["at"], item["key"], item["type"]), reverse=True)
    start = (page - 1) * per_page
    return {"items": items[start:start + per_page], "total": total, "page": page, "per_page": per_page}
