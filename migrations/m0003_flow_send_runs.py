"""A flow's send step that was handed off or failed used to be written twice: as a step run (outcome
``sent`` or ``failed``, naming its ``delivery``) and as the delivery record. The delivery record is now
the step's only record (stats and the timeline read it), so the old runs would count those messages
twice: delete them. Capped and suppressed sends (no delivery record) keep their runs."""
VERSION = "0003"
NAME = "flow send runs"


def upgrade(db):
    result = db.flow_steps.delete_many({"type": "send", "outcome": {"$in": ["sent", "failed"]}})
    return {"flowSteps": result.deleted_count}
