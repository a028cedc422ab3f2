"""Opens and clicks used to be added to their campaign's tallies by the request that recorded them;
they are now folded in later from the delivery records, from the state each record last folded
(engine.tallies). A record tracked before has no such state, so its next event would count its
recipient's first open, click and links again: mark every tracked record of a tallied campaign as
folded as it is (its tallies count it already). Records marked before are left alone."""
VERSION = "0004"
NAME = "tracking folds"
# a record's state as folded (engine.tallies._state), written here as it was when this migration was made
FOLDED_NOW = {"$set": {"folded": {
    **{name: {"$ifNull": [f"${name}", 0]} for name in ("opens", "humanOpens", "clicks", "humanClicks")},
    "clickedLinks": {"$ifNull": ["$clickedLinks", []]}, "humanLinks": {"$ifNull": ["$humanLinks", []]},
    "linkClicks": {"$ifNull": ["$linkClicks", {}]}, "eventHours": {"$ifNull": ["$eventHours", {}]}}}}


def upgrade(db):
    tallied = [doc["_id"] for doc in db.campaigns.find({"tallied": True}, {"_id": 1})]
    if not tallied:
        return {"deliveries": 0}
    result = db.communication_logs.update_many(
        {"campaign": {"$in": tallied}, "folded": {"$exists": False},
         "$or": [{"opens": {"$gt": 0}}, {"clicks": {"$gt": 0}}]}, [FOLDED_NOW])
    return {"deliveries": result.modified_count}
