"""A campaign's running figures (engine.tallies): one document per (campaign, A/B variant, test group)."""
from mongoengine import BooleanField, DynamicDocument, IntField, ObjectIdField, StringField


class CampaignTally(DynamicDocument):
    """Counters ``$inc``-ed by the writes that change the campaign's records (engine.tallies says which);
    ``links`` and ``hours`` hold the per-link and per-hour counters."""

    id = StringField(primary_key=True)  # "<campaign>:<variant or ->:<0|1>"
    campaign_id = ObjectIdField(db_field="campaign", required=True)
    variant = IntField()
    test = BooleanField()

    meta = {"collection": "campaign_tallies", "indexes": ["campaign_id"]}
