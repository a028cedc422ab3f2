"""The RFM state: the cuts of the last full pass and when the next one is due (one document)."""
from mongoengine import DateTimeField, DictField, Document, StringField

STATE_ID = "rfm"


class RfmState(Document):
    """``cuts``: ``{r, f, m}``, each the four values at the 20/40/60/80th percentile (engine.rfm)."""

    id = StringField(primary_key=True, default=STATE_ID)
    cuts = DictField()
    computed_at = DateTimeField(db_field="computedAt")
    started_at = DateTimeField(db_field="startedAt")
    finished_at = DateTimeField(db_field="finishedAt")
    next_at = DateTimeField(db_field="nextAt")

    meta = {"collection": "rfm_state"}
