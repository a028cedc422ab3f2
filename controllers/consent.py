"""Consent: the suppression list and one-click unsubscribing."""
from mongoengine.errors import NotUniqueError

import engine
from controllers.common import paginate, user_id
from errors import ApiError
from models import Customer, Suppression
from models.base import utcnow
from services import events, unsubscribe


def add_suppression(data, actor=None):
    """Suppress an address; 409 when it is already suppressed."""
    try:
        return Suppression(email=data["email"], reason=data["reason"], note=data.get("note"),
                           created_by=user_id(actor)).save(force_insert=True)
    except NotUniqueError as exc:
        raise ApiError.conflict(f"{data['email']} is already suppressed", {"email": ["Already suppressed."]}) from exc


def list_suppressions(query):
    """Suppressed addresses, newest first."""
    filters = {"email": query["email"]} if "email" in query else {}
    return paginate(Suppression.objects(**filters).order_by("-created_at", "-id"), query["page"], query["per_page"])


def remove_suppression(email):
    """Take an address off the list (campaigns may send to it again if its customer is subscribed)."""
    if not Suppression.objects(email=email.strip().lower()).delete():
        raise ApiError.not_found("suppression", email)


def unsubscribe_by_token(token):
    """Unsubscribe the customer a signed link names, and suppress their address (so it stays
    unsubscribed if they are deleted and imported again); None for a link that is not ours.
    Repeating it changes nothing."""
    named = unsubscribe.read(token)
    if named is None:
        return None
    customer_id, campaign_id = named
    customer = Customer.objects(pk=customer_id).modify(
        new=True, set__subscribed=False, min__unsubscribed_at=utcnow(), set__updated_at=utcnow())
    if customer is not None:
        Suppression.objects(email=customer.email).update_one(
            upsert=True, set_on_insert__reason="unsubscribed", set_on_insert__created_at=utcnow(),
            set_on_insert__note=f"one-click link (campaign {campaign_id})" if campaign_id else "one-click link")
        if campaign_id:
            engine.note_unsubscribed(campaign_id, customer.pk)
        events.publish("customer.unsubscribed", customerId=customer_id, campaignId=campaign_id)
    return customer_id


def valid_token(token):
    """True for a link we signed."""
    return unsubscribe.read(token) is not None
