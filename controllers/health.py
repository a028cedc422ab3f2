"""Readiness checks: each dependency that is configured must answer a ping."""
import logging

import mongoengine

log = logging.getLogger(__name__)


def _database():
    mongoengine.get_db().command("ping")


CHECKS = {"database": _database}


def readiness():
    """``{name: "ok" | "down: <reason>"}`` for every configured dependency."""
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready", never a 500
            log.warning("readiness check %s failed: %s", name, exc)
            results[name] = f"down: {type(exc).__name__}"
    return results
