"""Signed one-click unsubscribe links (``{{unsubscribeUrl}}``, RFC 8058 ``List-Unsubscribe``).

A link names the customer (and the campaign it came with), signed with ``UNSUBSCRIBE_SECRET`` (else
the session secret: set one that outlives secret rotations in production, or old links stop
working). It carries no address and needs no login; anyone holding it can only unsubscribe that one
customer.
"""
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

SALT = "crm.unsubscribe"
PATH = "/api/unsubscribe/"


def _serializer():
    config = current_app.config
    return URLSafeSerializer(config.get("UNSUBSCRIBE_SECRET") or config["SECRET_KEY"], salt=SALT)


def token(customer_id, campaign_id=None):
    """The signed token for a customer (and campaign)."""
    return _serializer().dumps([str(customer_id), str(campaign_id) if campaign_id else None])


def read(value):
    """``(customer id, campaign id or None)`` from a token, or None when it is not one of ours."""
    try:
        customer_id, campaign_id = _serializer().loads(value)
    except (BadSignature, ValueError, TypeError):
        return None
    return customer_id, campaign_id


def base_url():
    """Where links in messages point: ``PUBLIC_URL``, else this server's local address."""
    config = current_app.config
    return (config.get("PUBLIC_URL") or f"http://localhost:{config['PORT']}").rstrip("/")


def example_url(label):
    """A link in the unsubscribe link's place that unsubscribes nobody (previews, test sends)."""
    return base_url() + PATH + label


def url(customer_id, campaign_id=None):
    """The absolute link, on :func:`base_url`."""
    return base_url() + PATH + token(customer_id, campaign_id)
