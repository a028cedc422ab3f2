"""Import jobs kept their mapping as a dict under ``columns`` until a header could say anything a
document key cannot (``$x``, ``E.Mail``); now it is ``columnPairs``, a list of [column, field] pairs.
Old jobs are rewritten to the new shape, in batches of bounded size (the embedded store cannot run
the ``$objectToArray`` pipeline that does it in one update on MongoDB)."""
from pymongo import UpdateOne

VERSION = "0002"
NAME = "import job column pairs"
BATCH = 500


def upgrade(db):
    jobs = db.import_jobs
    changed = 0
    old_shape = {"columns": {"$exists": True}}
    while True:
        batch = list(jobs.find(old_shape, {"columns": 1}).limit(BATCH))
        if not batch:
            return {"importJobs": changed}
        jobs.bulk_write([UpdateOne(
            {"_id": job["_id"], "columns": {"$exists": True}},
            {"$set": {"columnPairs": [[column, field] for column, field in _mapping(job).items()]},
             "$unset": {"columns": ""}}) for job in batch], ordered=False)
        changed += len(batch)


def _mapping(job):
    columns = job.get("columns")
    return columns if isinstance(columns, dict) else {}
