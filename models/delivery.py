"""Per-recipient delivery records (the CommunicationLog): one per (campaign, customer), ever."""
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentListField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from models.base import utcnow

PENDING, SENT, DELIVERED, FAILED = "PENDING", "SENT", "DELIVERED", "FAILED"
STATUSES = (PENDING, SENT, DELIVERED, FAILED)


class TrackingEvent(EmbeddedDocument):
    """One open or click: when, which link, the agent's class and a network prefix (never a full IP)."""

    kind = StringField(choices=("open", "click"), required=True)
    at = DateTimeField(required=True)
    link = IntField()
    agent = StringField()
    ip = StringField()
    method = StringField()
    bot = BooleanField(default=False)
    reason = StringField()
    hour = StringField()  # the hour it happened in, ISO (the report's series groups by it)


class Delivery(Document):
    """One message to one customer. The unique (campaign, customer) index makes it exactly-once."""

    campaign_id = ObjectIdField(db_field="campaign", required=True)
    customer_id = ObjectIdField(db_field="customer", required=True)
    email = StringField(required=True)
    message = StringField()  # only on records planned before messages were rendered at send time
    status = StringField(choices=STATUSES, default=PENDING)
    vendor_message_id = StringField(db_field="vendorMessageId")
    attempts = IntField(default=0)
    error = StringField()
    batch_token = StringField(db_field="batch")
    retry = StringField()  # the retry-failed request that last made it PENDING again
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    sent_at = DateTimeField(db_field="sentAt")
    delivered_at = DateTimeField(db_field="deliveredAt")
    failed_at = DateTimeField(db_field="failedAt")
    variant = IntField()  # the A/B variant's index (engine.abtest); None outside A/B tests
    not_before = DateTimeField(db_field="notBefore")  # sent at a local time: not due before this (engine.planner)
    test_group = BooleanField(db_field="testGroup")  # sent in an A/B test's test (not as the winner)
    bounce = StringField(choices=("hard", "soft"))  # a FAILED receipt said the message bounced
    complained_at = DateTimeField(db_field="complainedAt")  # the recipient reported it as spam
    unsubscribed_at = DateTimeField(db_field="unsubscribedAt")  # through this campaign's link
    # tracking (engine.tracking): raw counts, human ones (not suspected bots), and a capped event log
    opens = IntField(default=0)
    human_opens = IntField(db_field="humanOpens", default=0)
    clicks = IntField(default=0)
    human_clicks = IntField(db_field="humanClicks", default=0)
    first_open_at = DateTimeField(db_field="firstOpenAt")
    last_open_at = DateTimeField(db_field="lastOpenAt")
    first_click_at = DateTimeField(db_field="firstClickAt")
    last_click_at = DateTimeField(db_field="lastClickAt")
    human_open_at = DateTimeField(db_field="humanOpenAt")  # the first human open
    human_click_at = DateTimeField(db_field="humanClickAt")  # the first human click
    last_human_click_at = DateTimeField(db_field="lastHumanClickAt")  # attribution's touch
    events = EmbeddedDocumentListField(TrackingEvent)
    clicked_links = ListField(IntField(), db_field="clickedLinks")  # indexes of the links clicked (the tallies')
    human_links = ListField(IntField(), db_field="humanLinks")  # ... of which a click was not a suspected bot
    # what its campaign's tallies fold in (engine.tallies): events per hour ({YYYYMMDDHH: counters}) and
    # clicks per link index, due until folded, the version every event raises, the state last folded
    event_hours = DictField(db_field="eventHours")
    link_clicks = DictField(db_field="linkClicks")
    tally_due = BooleanField(db_field="tallyDue")
    tally_version = IntField(db_field="tallyVersion")
    folded = DictField()
    # a flow's message (engine.flows): its own one-message send, so ``campaign`` is the record's own id
    flow_id = ObjectIdField(db_field="flow")
    enrolment = StringField()
    flow_version = IntField(db_field="flowVersion")  # the version whose steps it followed (its links)
    flow_step = IntField(db_field="flowStep")
    transactional = BooleanField()  # from a transactional flow: not counted by the frequency cap

    meta = {
        "collection": "communication_logs",
        "indexes": [
            {"fields": ("campaign_id", "customer_id"), "unique": True},
            ("campaign_id", "status", "customer_id"),
            ("batch_token", "status"),
            "vendor_message_id",
            ("customer_id", "last_human_click_at"),
            {"fields": ("flow_id", "flow_step", "status"), "sparse": True},
            # only the records whose opens or clicks are not folded into their tallies yet
            {"fields": ("tally_due", "campaign_id"), "partialFilterExpression": {"tallyDue": True}},
        ],
    }

