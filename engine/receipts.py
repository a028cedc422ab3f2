"""Delivery receipts (the vendor's word on each message), applied idempotently in one bulk write."""
from engine import control, store
from models.delivery import DELIVERED, FAILED, PENDING

APPLIED, UNCHANGED, UNKNOWN = "applied", "unchanged", "unknown"
__all__ = ["APPLIED", "DELIVERED", "FAILED", "UNCHANGED", "UNKNOWN", "apply"]


def apply(receipts):
    """Apply validated receipts ``[(index, {"delivery_id"|"vendor_message_id", "status",
    "timestamp", "error"?})]``; returns ``{index: {"result", "id"?}}``.

    Times are kept to the second (as most vendors report them), so a batch of 1,000 is a few updates
    (one per status, reason and second), not 1,000. A receipt's time is never before the record's
    ``sentAt`` (a vendor clock running behind cannot make a message delivered before it was sent). A
    receipt names its record by delivery id, else by vendor message id; one naming neither that
    exists is ``unknown``. A campaign whose every recipient has now failed becomes ``failed``.
    """
    records = store.records_for_receipts(
        [r["delivery_id"] for _, r in receipts if r.get("delivery_id")],
        [r["vendor_message_id"] for _, r in receipts if r.get("vendor_message_id")])
    by_id = {record["_id"]: record for record in records}
    by_vendor_id = {record["vendorMessageId"]: record for record in records if record.get("vendorMessageId")}
    groups, results, campaigns = {}, {}, set()
    for index, receipt in receipts:
        record = by_id.get(receipt.get("delivery_id")) or by_vendor_id.get(receipt.get("vendor_message_id"))
        if record is None:
            results[index] = {"result": UNKNOWN}
            continue
        results[index] = {"id": str(record["_id"]), "result": UNCHANGED}
        if record["status"] in store.RECEIPT_UPDATABLE:
            at = receipt_time(receipt["timestamp"], record.get("sentAt"))
            key = (receipt["status"], receipt.get("error"), at, record["status"] == PENDING)
            groups.setdefault(key, []).append(record["_id"])
            record["status"] = receipt["status"]  # a second receipt for it in this batch is unchanged
            results[index]["result"] = APPLIED
            campaigns.add(record["campaign"])
    store.apply_receipt_groups(groups)
    if any(key[0] == FAILED for key in groups):
        control.reconsider(campaigns)
    return results


def receipt_time(reported, sent_at):
    """The time a receipt records: the vendor's, to the second, and never before ``sent_at`` (the
    sender's time of the hand-off, shared by the records it wrote together)."""
    at = reported.replace(microsecond=0)
    return max(at, sent_at) if sent_at is not None else at
