"""Campaigns: a message sent to an audience, and its state."""
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    FloatField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from models.base import TimestampedDocument

DRAFT, SCHEDULED, SENDING = "draft", "scheduled", "sending"
COMPLETED, PAUSED, CANCELLED, FAILED = "completed", "paused", "cancelled", "failed"
STATUSES = (DRAFT, SCHEDULED, SENDING, COMPLETED, PAUSED, CANCELLED, FAILED)
# an A/B test's phases (abTest.phase): the test group being sent, waiting for the decision, the winner being sent
AB_TEST, AB_WAITING, AB_WINNER = "test", "waiting", "winner"
CHANNELS = ("email",)


class Campaign(TimestampedDocument):
    """A campaign; its recipients are :class:`models.delivery.Delivery` records."""

    name = StringField(required=True, max_length=200)
    # the content (engine.content): templates rendered per recipient at send time
    subject = StringField()  # None on campaigns made before subjects: their name is the subject
    preheader = StringField()
    html = StringField()
    message = StringField(required=True)  # the text body (the API's `text`, and the legacy `message`)
    from_name = StringField(db_field="fromName")
    reply_to = StringField(db_field="replyTo")
    template_id = ObjectIdField(db_field="template")
    links = ListField(StringField())  # the HTML's tracked links, by index (click tokens name an index)
    track_opens = BooleanField(db_field="trackOpens", default=True)
    track_clicks = BooleanField(db_field="trackClicks", default=True)
    attribution_days = FloatField(db_field="attributionDays", default=5)
    attribute_on = StringField(db_field="attributeOn", choices=("click", "delivery"), default="click")
    # A/B (engine.abtest): complete content per variant ({subject, preheader, html, text, links}), and
    # the test: {testPercent, metric, decideAfterMinutes, fallback, phase, decideAt, winner, ...}
    variants = ListField(DictField())
    ab_test = DictField(db_field="abTest")
    rules = DictField()
    segment_id = ObjectIdField(db_field="segment")
    channel = StringField(choices=CHANNELS, default="email")
    status = StringField(choices=STATUSES, default=DRAFT)
    scheduled_at = DateTimeField(db_field="scheduledAt")
    messages_per_second = FloatField(db_field="messagesPerSecond")
    # "HH:MM": each recipient's message is due at that time in their own zone (engine.planner)
    send_at_local_time = StringField(db_field="sendAtLocalTime")
    audience_size = IntField(db_field="audienceSize")
    started_at = DateTimeField(db_field="startedAt")
    completed_at = DateTimeField(db_field="completedAt")
    plan_cursor = ObjectIdField(db_field="planCursor")
    suppressed = IntField(default=0)  # audience members skipped: unsubscribed or on the suppression list
    planned = DateTimeField()
    # its figures are kept as running tallies from its first record (engine.tallies); False on campaigns
    # made before tallies, whose figures are aggregated from their records until recounted
    tallied = BooleanField(default=False)
    rate_next_at = DateTimeField(db_field="rateNextAt")
    last_error = StringField(db_field="lastError")
    created_by = ObjectIdField(db_field="createdBy")

    meta = {"collection": "campaigns", "indexes": ["-created_at", ("status", "scheduled_at")]}

    @property
    def tracking(self):
        """``{opens, clicks}``: what the engine tracks for this campaign."""
        return {"opens": self.track_opens, "clicks": self.track_clicks}

    def content(self, variant=None):
        """What :func:`engine.content.build` renders for each recipient (of ``variant``, an index)."""
        own = {"subject": self.subject or self.name, "preheader": self.preheader, "html": self.html,
               "text": self.message, "links": list(self.links or ()), "tracking": self.tracking}
        if variant is None or not self.variants:
            return own
        return {**own, **{key: value for key, value in self.variants[variant].items() if key in own}}
