"""Apply and list the data migrations of :data:`migrations.MIGRATIONS`."""
import logging
import os
import socket
import time
import uuid
from datetime import timedelta

import mongoengine
from pymongo.errors import DuplicateKeyError

from migrations import MIGRATIONS
from models.base import utcnow
from models.migration import AppliedMigration, MigrationLock

log = logging.getLogger(__name__)
LOCK_ID = "upgrade"
LEASE = timedelta(minutes=15)  # a holder that died releases the upgrade after this long


class UpgradeBusy(RuntimeError):
    """Another process held the upgrade for longer than the caller would wait."""


def status():
    """``[{version, name, appliedAt or None, durationMs, changed}]`` in order, and records of versions
    this code does not know (a database upgraded by newer code) after them."""
    applied = {record.id: record for record in AppliedMigration.objects}
    rows = []
    for migration in MIGRATIONS:
        record = applied.pop(migration.version, None)
        rows.append({"version": migration.version, "name": migration.name,
                     "appliedAt": record.applied_at if record else None,
                     "durationMs": record.duration_ms if record else None,
                     "changed": record.changed if record else None})
    for version, record in sorted(applied.items()):
        rows.append({"version": version, "name": record.name, "appliedAt": record.applied_at,
                     "durationMs": record.duration_ms, "changed": record.changed, "unknown": True})
    return rows


def pending():
    """The migrations not applied yet, in order."""
    done = set(AppliedMigration.objects.scalar("id"))
    return [migration for migration in MIGRATIONS if migration.version not in done]


def upgrade(wait_s=300, report=lambda migration, changed: None):
    """Apply every pending migration in order, recording each as it finishes; returns those applied.

    Holds the upgrade lease meanwhile: a second ``upgrade`` started at the same time waits (up to
    ``wait_s``) and then finds nothing pending. A migration that raises stops the upgrade there, its
    version unrecorded: fixing the cause and running again applies it (each is idempotent).
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _acquire(owner, wait_s)
    try:
        applied = []
        db = mongoengine.get_db()
        for migration in pending():
            started = time.monotonic()
            changed = migration.upgrade(db) or {}
            AppliedMigration(id=migration.version, name=migration.name, applied_at=utcnow(),
                             duration_ms=round((time.monotonic() - started) * 1000), changed=changed).save()
            log.info("migration %s (%s) applied: %s", migration.version, migration.name, changed)
            report(migration, changed)
            applied.append(migration)
            _renew(owner)
        return applied
    finally:
        MigrationLock.objects(id=LOCK_ID, owner=owner).delete()


def _acquire(owner, wait_s):
    deadline = time.monotonic() + wait_s
    while True:
        now = utcnow()
        try:
            # Taken when absent (the upsert inserts it) or expired; held by another, the upsert's
            # insert collides with the live lock's _id.
            MigrationLock._get_collection().update_one(
                {"_id": LOCK_ID, "expiresAt": {"$lte": now}},
                {"$set": {"owner": owner, "expiresAt": now + LEASE}}, upsert=True)
            return
        except DuplicateKeyError:
            if time.monotonic() >= deadline:
                holder = MigrationLock.objects(id=LOCK_ID).first()
                raise UpgradeBusy(f"another upgrade holds the lock ({holder.owner if holder else '?'})") from None
            time.sleep(0.5)


def _renew(owner):
    MigrationLock.objects(id=LOCK_ID, owner=owner).update(set__expires_at=utcnow() + LEASE)


def warn_if_pending():
    """At a server's start: say so in the log when the database is behind this code."""
    waiting = pending()
    if waiting:
        log.warning("the database is behind this code: %d data migration(s) pending (%s); run `flask db upgrade` "
                    "(the container's entrypoint does)", len(waiting), ", ".join(m.version for m in waiting))
