"""A campaign's audience: its rules, or its saved segment's rules as they are now."""
from models import Segment
from models.base import utcnow
from schemas.attribute import rule_fields
from segments import compile_group


def audience_query(campaign, now=None):
    """The MongoDB filter of the campaign's audience, evaluated now (segments are dynamic);
    LookupError when its segment no longer exists."""
    rules = campaign.rules
    if campaign.segment_id is not None:
        segment = Segment.objects(pk=campaign.segment_id).first()
        if segment is None:
            raise LookupError("The campaign's segment no longer exists")
        rules = segment.rules
    return compile_group(rules or {"op": "AND", "rules": []}, now or utcnow(), fields=rule_fields())

