"""CSV import jobs and the per-row errors they found."""
from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from models.base import utcnow

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED)
TYPES = ("customers", "orders", "suppressions")
COUNTS = ("read", "inserted", "updated", "unchanged", "skipped", "failed")
ROW_ERRORS_DAYS = 30  # how long a job's row errors are kept (they may quote personal data)


def zero_counts():
    """Every count at 0."""
    return {name: 0 for name in COUNTS}


class ImportJob(Document):
    """One uploaded CSV file and its progress. ``rows_done`` is the last committed data row: a job
    picked up again (its worker died) skips the rows before it, so nothing is written twice."""

    type = StringField(choices=TYPES, required=True)
    status = StringField(choices=STATUSES, default=QUEUED)
    filename = StringField(max_length=255)
    file_id = ObjectIdField(db_field="fileId")  # the upload, in GridFS until the job finishes
    size = IntField(default=0)  # bytes
    delimiter = StringField(max_length=1, default=",")
    # file column → field (None: ignored), as [column, field] pairs: a header may say anything ("$x",
    # "E.Mail"), and a document key may not (jobs from before kept a dict: migration 0002 converts them)
    # (untyped inner lists: a typed StringField refuses the None of an ignored column)
    column_pairs = ListField(ListField(), db_field="columnPairs")
    mode = StringField(default="merge")
    counts = DictField(default=zero_counts)
    rows_done = IntField(db_field="rowsDone", default=0)
    row_errors_dropped = BooleanField(db_field="rowErrorsDropped", default=False)  # past IMPORT_MAX_ROW_ERRORS
    bytes_done = IntField(db_field="bytesDone", default=0)
    error = StringField()
    created_by = ObjectIdField(db_field="createdBy")
    created_at = DateTimeField(db_field="createdAt", default=utcnow)
    started_at = DateTimeField(db_field="startedAt")
    worker = StringField()  # who holds it: a chunk is committed only by its holder
    heartbeat_at = DateTimeField(db_field="heartbeatAt")
    finished_at = DateTimeField(db_field="finishedAt")

    meta = {"collection": "import_jobs", "indexes": [("-created_at", "-id"), "status"]}

    @property
    def columns(self):
        """``{file column: field or None}``."""
        return dict(self.column_pairs or ())


class ImportRowError(Document):
    """A row the import could not take (or took with a warning), by line number in the file."""

    job_id = ObjectIdField(db_field="job", required=True)
    row = IntField(required=True)
    field = StringField()
    message = StringField(required=True)
    created_at = DateTimeField(db_field="createdAt", default=utcnow)  # a TTL index deletes it after ROW_ERRORS_DAYS

    meta = {"collection": "import_errors", "indexes": [
        ("job_id", "row", "id"), {"fields": ["created_at"], "expireAfterSeconds": ROW_ERRORS_DAYS * 24 * 3600}]}
