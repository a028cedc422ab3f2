"""Campaigns made before subjects existed (the legacy client's, and every one before content came):
their subject was their name. Store it, so a subject is a field the database holds for every campaign
(the list, the reports and any query read it), not a rule each reader must remember."""
VERSION = "0001"
NAME = "campaign subjects"


def upgrade(db):
    result = db.campaigns.update_many({"subject": None, "name": {"$type": "string"}},
                                      [{"$set": {"subject": "$name"}}])
    return {"campaigns": result.modified_count}
