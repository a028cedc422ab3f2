"""``/api/delivery-receipts``: the vendor's webhook (HMAC-signed, not a user session)."""
from flask import Blueprint, request

from controllers import receipts as controller
from routes.endpoint import endpoint
from routes.helpers import json_payload
from schemas.campaign import ReceiptIn, ReceiptsOut

bp = Blueprint("receipts", __name__)
receipt_in = ReceiptIn()


@bp.post("")
@endpoint(public=True, response=ReceiptsOut, errors=(400, 401, 413, 415, 503),
          description="Body: a JSON array of {deliveryId | vendorMessageId, status: DELIVERED|FAILED, "
                      "timestamp, error?}. Headers: X-Webhook-Timestamp (unix seconds) and "
                      "X-Webhook-Signature: sha256=HMAC(VENDOR_WEBHOOK_SECRET, '<timestamp>.<body>'). "
                      "Idempotent; unknown or invalid items are reported per item.")
def receive_receipts():
    """Apply delivery receipts from the messaging vendor (the signature is checked before the body)."""
    controller.verify_signature(request.headers, request.get_data(cache=True))
    return controller.apply_receipts(json_payload(empty=None), receipt_in)
