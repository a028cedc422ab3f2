"""Starts scheduled campaigns when their time comes, and re-queues stalled work.

With a broker, Celery beat runs ``crm.start_due_campaigns`` every ``SCHEDULER_INTERVAL_S``.
Without one (the embedded default), :func:`start_poller`'s thread in the server process does the same.
"""
import logging
import threading

from pymongo.errors import ConnectionFailure

log = logging.getLogger(__name__)


class OutageLog:
    """Logs a database outage once when it starts and once when it ends, not once per round."""

    def __init__(self, what):
        self.what = what
        self.down = False

    def failed(self, exc):
        """A round could not reach the database."""
        if not self.down:
            log.warning("%s: database unreachable (%s); retrying every round until it answers",
                        self.what, type(exc).__name__)
            self.down = True

    def succeeded(self):
        """A round reached the database."""
        if self.down:
            log.warning("%s: database reachable again", self.what)
            self.down = False


def start_poller(app):
    """A daemon thread running the sweep in-process periodically."""
    from engine import jobs, runner

    stop = threading.Event()
    outage = OutageLog("scheduled-campaign sweep")

    def run():
        while not stop.wait(app.config["SCHEDULER_INTERVAL_S"]):
            try:
                with app.app_context():
                    started, _, _ = jobs.sweep(runner.submit)
                outage.succeeded()
                if started:
                    log.info("started %d scheduled campaign(s)", started)
            except ConnectionFailure as exc:
                outage.failed(exc)
            except Exception:  # keep polling: one bad round must not stop scheduling
                log.exception("scheduler round failed")

    thread = threading.Thread(target=run, name="campaign-scheduler", daemon=True)
    thread.start()
    app.extensions["scheduler_stop"] = stop
    return stop
