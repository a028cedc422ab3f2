"""Delivery receipts from the vendor's webhook: signed, batched, idempotent."""
import hmac
import time

from flask import current_app, request
from marshmallow import ValidationError
from pymongo import UpdateMany

from errors import ApiError, flatten_errors
from models import Delivery
from models.delivery import DELIVERED, FAILED, PENDING, SENT
from services.vendors import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

MAX_SKEW_S = 300
MAX_RECEIPTS = 1000
UPDATABLE_FROM = (PENDING, SENT)  # DELIVERED and FAILED are final (until a retry)


def verify_signature():
    """401 unless the body is signed with VENDOR_WEBHOOK_SECRET within the last five minutes."""
    secret = current_app.config.get("VENDOR_WEBHOOK_SECRET")
    if not secret:
        raise ApiError.unavailable("Delivery receipts are not configured (VENDOR_WEBHOOK_SECRET)")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
        raise ApiError.unauthorized("Missing or stale webhook timestamp")
    expected = sign(secret, timestamp, request.get_data())
    if not hmac.compare_digest(expected, signature):
        raise ApiError.unauthorized("Invalid webhook signature")


def apply_receipts(items, schema):
    """Validate each receipt, then apply all applicable ones in one bulk write.

    Returns per-item results: ``applied``, ``unchanged`` (already in that or a final state),
    ``unknown`` (no such delivery) or ``invalid`` (with its errors).
    """
    if not isinstance(items, list):
        raise ApiError.bad_request("Body must be a JSON array of receipts")
    if len(items) > MAX_RECEIPTS:
        raise ApiError.bad_request(f"At most {MAX_RECEIPTS} receipts per request")
    results, valid = [], []
    for index, item in enumerate(items):
        try:
            valid.append((index, schema.load(item)))
            results.append(None)
        except ValidationError as exc:
            results.append({"index": index, "result": "invalid", "errors": flatten_errors(exc.messages)})
    by_id, by_vendor_id = _existing(valid)
    groups = {}
    for index, receipt in valid:
        record = by_id.get(receipt.get("delivery_id")) or by_vendor_id.get(receipt.get("vendor_message_id"))
        if record is None:
            results[index] = {"index": index, "result": "unknown"}
            continue
        outcome = {"index": index, "id": str(record["_id"])}
        if record["status"] in UPDATABLE_FROM:
            key = (receipt["status"], receipt.get("error"), receipt["timestamp"])
            groups.setdefault(key, []).append(record["_id"])
            record["status"] = receipt["status"]  # a second receipt for it in this batch is unchanged
            outcome["result"] = "applied"
        else:
            outcome["result"] = "unchanged"
        results[index] = outcome
    _write(groups)
    summary = {name: sum(1 for r in results if r["result"] == name)
               for name in ("applied", "unchanged", "unknown", "invalid")}
    return {**summary, "results": results}


def _existing(valid):
    ids = [r["delivery_id"] for _, r in valid if r.get("delivery_id")]
    vendor_ids = [r["vendor_message_id"] for _, r in valid if r.get("vendor_message_id")]
    clauses = ([{"_id": {"$in": ids}}] if ids else []) + (
        [{"vendorMessageId": {"$in": vendor_ids}}] if vendor_ids else [])
    by_id, by_vendor_id = {}, {}
    if clauses:
        for record in Delivery._get_collection().find(
            {"$or": clauses}, {"status": 1, "vendorMessageId": 1}
        ):
            by_id[record["_id"]] = record
            by_vendor_id[record.get("vendorMessageId")] = record
    return by_id, by_vendor_id


def _write(groups):
    """One bulk write; each update only touches records still in an updatable state (idempotent)."""
    operations = []
    for (status, error, at), ids in groups.items():
        fields = {"status": status, ("deliveredAt" if status == DELIVERED else "failedAt"): at}
        if status == FAILED:
            fields["error"] = error or "failed"
        operations.append(UpdateMany({"_id": {"$in": ids}, "status": {"$in": list(UPDATABLE_FROM)}},
                                     {"$set": fields}))
    if operations:
        Delivery._get_collection().bulk_write(operations, ordered=False)
