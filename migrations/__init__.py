"""Versioned data migrations: what changes stored documents as the product's fields change.

Each migration is a function of the database (pymongo) that brings documents written by older code
to the shape current code writes, and returns what it changed (``{"campaigns": 3}``). Every one is
idempotent by construction: it selects only documents still in the old shape, so running it again,
or after an interrupted run, changes nothing more. Applied versions are recorded in the
``migrations`` collection; ``flask db upgrade`` applies the pending ones in order under a lease
(one upgrade at a time), ``flask db status`` lists them. Indexes are not migrations: every process
creates the ones the documents declare when it starts (``models.db.ensure_indexes``).

Adding one: write ``def upgrade(db)`` in a module here named ``mNNNN_<what>.py`` and list it in
:data:`MIGRATIONS` (versions only grow; an applied migration is never edited).
"""
from dataclasses import dataclass
from typing import Callable

from migrations import (
    m0001_campaign_subjects,
    m0002_import_job_column_pairs,
    m0003_flow_send_runs,
    m0004_tracking_folds,
)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    upgrade: Callable

    @classmethod
    def of(cls, module):
        return cls(module.VERSION, module.NAME, module.upgrade)


MIGRATIONS = tuple(Migration.of(module) for module in (m0001_campaign_subjects, m0002_import_job_column_pairs,
                                                         m0003_flow_send_runs, m0004_tracking_folds))
HEAD = MIGRATIONS[-1].version
