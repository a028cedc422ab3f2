"""Writing customers and orders many at a time: the bulk endpoints, CSV imports and the CLI share it.

Everything is set-based: one ``bulk_write``/``insert_many`` per chunk, never a round trip per row.

- **Customers upsert by email**, ``merge`` (fields given replace, tags are added, attributes are
  set key by key, ``null`` removing one) or ``replace`` (tags too, and the whole ``attributes`` when
  given). Totals are never written here. An email twice in one chunk: the later item wins, the
  earlier is reported as skipped. An item that would change nothing is ``unchanged`` and not
  written (re-importing the same file changes nothing, ``updatedAt`` included).
- **Orders** may carry the client's ``externalId`` (unique): sent again, the same order is skipped
  and not counted twice; the same id with another customer or amount is reported. The customers'
  totals are credited from the orders the chunk wrote (found by their ``source`` token), once per
  chunk even if the chunk runs again after a crash (``creditedBy`` keeps the last chunks).
"""
from bson import ObjectId
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from engine import attribution, flows, rfm
from models import Customer, Order
from models.base import utcnow
from models.db import customer_ids, in_chunks
from services import events

DUPLICATE_KEY = 11000
CREDIT_MEMORY = 20  # chunks remembered per customer in creditedBy
CREATED, UPDATED, UNCHANGED, SKIPPED, FAILED = "created", "updated", "unchanged", "skipped", "failed"


def result(status, ident=None, errors=None, message=None):
    """One item's outcome: ``{"status", "id"?, "errors"?, "message"?}``."""
    item = {"status": status}
    if ident is not None:
        item["id"] = str(ident)
    if errors:
        item["errors"] = errors
    if message:
        item["message"] = message
    return item


def duplicate(winner):
    """The outcome of an item whose key comes again later in the same chunk: the later one wins."""
    return {"status": SKIPPED, "duplicate_of": winner,
            "message": f"The same key comes again at item {winner}, which wins."}


def _customer_update(item, mode, actor_id, now):
    """The upsert of one validated customer item."""
    fields = {"updatedAt": now}
    on_insert = {"createdAt": now, "totalSpend": 0.0, "numVisits": 0, "subscribed": True}
    if actor_id is not None:
        on_insert["createdBy"] = actor_id
    update = {}
    if "name" in item:
        fields["name"] = item["name"]
    if mode == "replace":
        fields["tags"] = item.get("tags", [])
    elif item.get("tags"):
        update["$addToSet"] = {"tags": {"$each": item["tags"]}}
    else:
        on_insert["tags"] = []
    _set_profile(item, mode, fields, update)
    if "subscribed" in item:
        del on_insert["subscribed"]
        fields["subscribed"] = item["subscribed"]
        if item["subscribed"]:
            update.setdefault("$unset", {})["unsubscribedAt"] = ""
        else:
            update["$min"] = {"unsubscribedAt": now}  # the first unsubscription is kept
    update["$set"] = fields
    update["$setOnInsert"] = on_insert
    return update


PROFILE = ("timezone", "locale")


def _set_profile(item, mode, fields, update):
    """``attributes`` (key by key in ``merge``, whole in ``replace``), ``timezone`` and ``locale``
    (``null`` removes them) into the update being built."""
    unset = {}
    attributes = item.get("attributes")
    if attributes is not None:
        if mode == "replace":
            fields["attributes"] = {key: value for key, value in attributes.items() if value is not None}
        for key, value in attributes.items() if mode != "replace" else ():
            if value is None:
                unset[f"attributes.{key}"] = ""
            else:
                fields[f"attributes.{key}"] = value
    for name in PROFILE:
        if name in item:
            if item[name] is None:
                unset[name] = ""
            else:
                fields[name] = item[name]
    if unset:
        update["$unset"] = unset


def _same_profile(item, mode, existing):
    """True when the item's attributes, time zone and locale are what ``existing`` holds."""
    stored = existing.get("attributes") or {}
    attributes = item.get("attributes")
    if attributes is not None:
        if mode == "replace":
            if {key: value for key, value in attributes.items() if value is not None} != stored:
                return False
        elif any(stored.get(key) != value for key, value in attributes.items()):
            return False
    return all(item[name] == existing.get(name) for name in PROFILE if name in item)


def _changes_nothing(item, mode, existing):
    """True when writing ``item`` over the stored customer ``existing`` would change no field."""
    if "name" in item and item["name"] != existing.get("name"):
        return False
    if "subscribed" in item and item["subscribed"] != existing.get("subscribed", True):
        return False
    if not _same_profile(item, mode, existing):
        return False
    tags = existing.get("tags") or []
    if mode == "replace":
        return item.get("tags", []) == tags
    return set(item.get("tags") or ()) <= set(tags)


def upsert_customers(items, mode="merge", actor_id=None, now=None):
    """Create or update validated customer items (``None`` entries are skipped: they failed
    validation); returns one result per item, by position (``None`` for the ``None`` entries).

    One read of the chunk's stored customers (in lists of ``MONGO_MAX_IN`` emails), then one bulk
    write of the items that create or change something."""
    now = now or utcnow()
    results = [None] * len(items)
    last = {}
    for index, item in enumerate(items):
        if item is None:
            continue
        if item["email"] in last:
            results[last[item["email"]]] = duplicate(index)
        last[item["email"]] = index
    stored = {doc["email"]: doc for chunk in in_chunks(last) for doc in Customer._get_collection().find(
        {"email": {"$in": chunk}}, {"email": 1, "name": 1, "tags": 1, "subscribed": 1, "attributes": 1,
                                    "timezone": 1, "locale": 1})}
    chosen = []
    for email, i in sorted(last.items(), key=lambda pair: pair[1]):
        if email in stored and _changes_nothing(items[i], mode, stored[email]):
            results[i] = result(UNCHANGED, stored[email]["_id"])
        else:
            chosen.append(i)
    operations = [UpdateOne({"email": items[i]["email"]}, _customer_update(items[i], mode, actor_id, now),
                            upsert=True) for i in chosen]
    upserted = _bulk_upsert(operations)
    created_ids = {chosen[op]: ident for op, ident in upserted.items()}
    for i in chosen:
        if i in created_ids:
            results[i] = result(CREATED, created_ids[i])
        else:  # stored before this read, or created by another writer since (its id is read back)
            email = items[i]["email"]
            results[i] = result(UPDATED, stored[email]["_id"] if email in stored else _ids_by_email([email]).get(email))
    if events.enabled():
        events.publish_many(
            (f"customer.{results[i]['status']}", {"customerId": results[i].get("id"), "email": items[i]["email"]})
            for i in chosen)
    created = [ObjectId(created_ids[i]) for i in chosen if i in created_ids]
    changed = [ObjectId(results[i]["id"]) for i in chosen if i not in created_ids and results[i].get("id")]
    flows.safely(flows.customers_created, created, now)
    flows.safely(flows.customers_changed, changed, now)
    return results


def _bulk_upsert(operations):
    """Run upserts; ``{operation index: upserted _id}``. Two upserts racing on one new email (here
    and in another request) make one hit the unique index: that one is run again, as an update."""
    if not operations:
        return {}
    collection = Customer._get_collection()
    try:
        outcome = collection.bulk_write(operations, ordered=False)
        return dict(outcome.upserted_ids)
    except BulkWriteError as exc:
        details = exc.details
        errors = details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        upserted = {entry["index"]: entry["_id"] for entry in details.get("upserted", [])}
        for error in errors:
            collection.bulk_write([operations[error["index"]]])  # the other writer created it
        return upserted


def insert_orders(items, source, actor_id=None, now=None):
    """Record validated order items (``None`` entries skipped) under the ``source`` token and credit
    their customers; one result per item."""
    now = now or utcnow()
    results = [None] * len(items)
    by_email = _ids_by_email({item["customer_email"] for item in items
                              if item is not None and "customer_id" not in item})
    wanted = {item["customer_id"] for item in items if item is not None and "customer_id" in item}
    known = {doc["_id"] for chunk in in_chunks(sorted(wanted))  # sorted: each chunk a run of ids
             for doc in Customer._get_collection().find({"_id": customer_ids(chunk)}, {"_id": 1})} & wanted
    known.update(by_email.values())
    seen_external = {}
    docs, positions = [], []
    for index, item in enumerate(items):
        if item is None:
            continue
        if "customer_id" not in item:
            if item["customer_email"] not in by_email:
                results[index] = result(FAILED, errors={"customerEmail": [
                    f"No customer has the email {item['customer_email']}."]})
                continue
            item = items[index] = {**item, "customer_id": by_email[item["customer_email"]]}
        if item["customer_id"] not in known:
            results[index] = result(FAILED, errors={"customerId": [f"Customer {item['customer_id']} not found."]})
            continue
        external = item.get("external_id")
        if external is not None:
            if external in seen_external:
                results[index] = _same_order_again(items[seen_external[external]], item, None,
                                                   f"item {seen_external[external]}")
                continue
            seen_external[external] = index
        doc = {"_id": ObjectId(), "customer": item["customer_id"], "amount": item["amount"],
               "date": item.get("date") or now, "createdAt": now, "source": source}
        if external is not None:
            doc["externalId"] = external
        if actor_id is not None:
            doc["createdBy"] = actor_id
        docs.append(doc)
        positions.append(index)
    for doc, credited in zip(docs, attribution.attribute([(d["customer"], d["date"]) for d in docs])):
        if credited is not None:
            doc["attribution"] = credited
    refused = _insert_new(docs)
    if refused:
        existing = {doc["externalId"]: doc for chunk in in_chunks(docs[i]["externalId"] for i in refused)
                    for doc in Order._get_collection().find({"externalId": {"$in": chunk}},
                                                            {"externalId": 1, "customer": 1, "amount": 1})}
    for position, (index, doc) in enumerate(zip(positions, docs)):
        if position in refused:
            earlier = existing.get(doc["externalId"])
            results[index] = _same_order_again(
                {"customer_id": earlier["customer"], "amount": earlier["amount"]} if earlier else None,
                items[index], earlier and earlier["_id"], f"order {earlier and earlier['_id']}")
        else:
            results[index] = result(CREATED, doc["_id"])
    credit_customers(source, now)
    flows.safely(flows.orders_created, [{"_id": doc["_id"], "customer": doc["customer"], "amount": doc["amount"],
                                         "date": doc.get("date")} for position, doc in enumerate(docs)
                                        if position not in refused], now)
    if events.enabled():
        events.publish_many(("order.created", {"orderId": str(doc["_id"]), "customerId": str(doc["customer"]),
                                               "amount": doc["amount"]})
                            for position, doc in enumerate(docs) if position not in refused)
    return results


def _ids_by_email(emails):
    """``{email: customer id}`` for the stored customers among ``emails``."""
    return {doc["email"]: doc["_id"] for chunk in in_chunks(emails)
            for doc in Customer._get_collection().find({"email": {"$in": chunk}}, {"email": 1})}


def _insert_new(docs):
    """Insert orders; the positions refused because their ``externalId`` exists already."""
    if not docs:
        return set()
    try:
        Order._get_collection().bulk_write([InsertOne(doc) for doc in docs], ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


def _same_order_again(first, item, ident, where):
    """An order whose ``externalId`` was seen: skipped when it is the same order, else failed."""
    if first is not None and first["customer_id"] == item["customer_id"] and first["amount"] == item["amount"]:
        return result(SKIPPED, ident, message=f"Already recorded ({where}): not counted again.")
    return result(FAILED, errors={"externalId": [
        f"Already used by {where} with another customer or amount."]})


def credit_customers(source, now=None):
    """Add the orders written under ``source`` to their customers' totals, once: a customer whose
    ``creditedBy`` names ``source`` already is left alone (the chunk ran before, then crashed)."""
    now = now or utcnow()
    sums = Order._get_collection().aggregate([
        {"$match": {"source": source}},
        {"$group": {"_id": "$customer", "spend": {"$sum": "$amount"}, "visits": {"$sum": 1},
                    "last": {"$max": "$date"}}},
    ])
    sums = list(sums)
    operations = [UpdateOne({"_id": entry["_id"], "creditedBy": {"$ne": source}}, {
        "$inc": {"totalSpend": entry["spend"], "numVisits": entry["visits"]},
        "$max": {"lastVisitDate": entry["last"]},
        "$set": {"updatedAt": now},
        "$push": {"creditedBy": {"$each": [source], "$slice": -CREDIT_MEMORY}},
    }) for entry in sums]
    if operations:
        Customer._get_collection().bulk_write(operations, ordered=False)
        rfm.rescore([entry["_id"] for entry in sums])
