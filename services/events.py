"""Domain events (``campaign.created``, ``campaign.completed``, ...) on a RabbitMQ topic exchange.

Published only when a broker is configured; subscribers bind a queue to the ``crm.events`` exchange
with a routing key such as ``campaign.*``. A failure to publish is logged, never fatal.
"""
import logging

from flask import current_app
from kombu import Exchange

from models.base import utcnow
from dates import iso_utc
from services.queue import EXTENSION, PUBLISH_RETRY, broker_configured

log = logging.getLogger(__name__)
EXCHANGE = Exchange("crm.events", type="topic", durable=True)


def enabled():
    """True when events go anywhere (a broker is configured)."""
    return broker_configured(current_app)


def publish_many(events):
    """Publish ``(event, payload)`` pairs over one connection (bulk writes, imports)."""
    if not enabled():
        log.debug("events (no broker): not published")
        return
    celery = current_app.extensions[EXTENSION]
    now = iso_utc(utcnow())
    try:
        with celery.producer_or_acquire() as producer:
            for event, payload in events:
                producer.publish(
                    {"event": event, "at": now, **payload}, exchange=EXCHANGE, routing_key=event,
                    declare=[EXCHANGE], serializer="json", retry=True, retry_policy=PUBLISH_RETRY,
                )
    except Exception as exc:  # the state change already happened; subscribers miss these
        log.error("could not publish events: %s", exc)


def publish(event, **payload):
    """Publish ``event`` with ``payload`` (JSON) when a broker is configured."""
    publish_many([(event, payload)])
