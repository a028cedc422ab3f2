"""Delivery receipts from the vendor's webhook: signed, batched, idempotent."""
import hmac
import time

from flask import current_app
from marshmallow import ValidationError

import engine
from engine.vendors import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from errors import ApiError, flatten_errors

MAX_SKEW_S = 300
MAX_RECEIPTS = 1000
RESULTS = ("applied", "unchanged", "unknown", "invalid")


def verify_signature(headers, body):
    """401 unless ``body`` (bytes) is signed with VENDOR_WEBHOOK_SECRET within the last five minutes,
    as the request ``headers`` say."""
    secret = current_app.config.get("VENDOR_WEBHOOK_SECRET")
    if not secret:
        raise ApiError.unavailable("Delivery receipts are not configured (VENDOR_WEBHOOK_SECRET)")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    # unix seconds: at most 12 ASCII digits (str.isdigit() also takes "²" and other scripts' digits)
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or \
            abs(time.time() - int(timestamp)) > MAX_SKEW_S:
        raise ApiError.unauthorized("Missing or stale webhook timestamp")
    expected = sign(secret, timestamp, body)
    if not signature.isascii() or not hmac.compare_digest(expected, signature):
        raise ApiError.unauthorized("Invalid webhook signature")


def apply_receipts(items, schema):
    """Validate each receipt, then let the engine apply the valid ones (one bulk write).

    Returns totals and per-item results: ``applied``, ``unchanged`` (already in that or a final
    state), ``unknown`` (no such delivery) or ``invalid`` (with its errors).
    """
    if not isinstance(items, list):
        raise ApiError.bad_request("Body must be a JSON array of receipts")
    if len(items) > MAX_RECEIPTS:
        raise ApiError.bad_request(f"At most {MAX_RECEIPTS} receipts per request")
    results, valid = {}, []
    for index, item in enumerate(items):
        try:
            valid.append((index, schema.load(item)))
        except ValidationError as exc:
            results[index] = {"result": "invalid", "errors": flatten_errors(exc.messages)}
    results.update(engine.receipts.apply(valid))
    ordered = [{"index": index, **results[index]} for index in range(len(items))]
    return {**{name: sum(1 for r in ordered if r["result"] == name) for name in RESULTS}, "results": ordered}
