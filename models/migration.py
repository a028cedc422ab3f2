"""The record of applied data migrations (``flask db upgrade``), one document a version."""
from mongoengine import DateTimeField, DictField, Document, IntField, StringField


class AppliedMigration(Document):
    """``_id`` is the migration's version ("0001"); ``changed`` what it reported changing."""

    id = StringField(primary_key=True)
    name = StringField(required=True)
    applied_at = DateTimeField(db_field="appliedAt", required=True)
    duration_ms = IntField(db_field="durationMs")
    changed = DictField()

    meta = {"collection": "migrations"}


class MigrationLock(Document):
    """At most one upgrade at a time (a web entrypoint and a worker's may start together): the one
    document ``_id: "upgrade"``, held by ``owner`` until ``expires_at`` (a crashed holder's lease ends)."""

    id = StringField(primary_key=True)
    owner = StringField(required=True)
    expires_at = DateTimeField(db_field="expiresAt", required=True)

    meta = {"collection": "migration_lock"}
