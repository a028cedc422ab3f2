"""Where the engine's jobs run: never on the request thread.

With a broker (``CELERY_BROKER_URL``) a job is a Celery task sent to RabbitMQ and run by a worker.
Without one (the embedded default) it runs on a small pool of background threads in this process
(``ENGINE_THREADS``), each inside an app context. Either way the caller returns at once.
"""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import current_app
from kombu.exceptions import OperationalError
from pymongo.errors import ConnectionFailure, OperationFailure

from services.queue import EXTENSION as CELERY
from services.queue import PUBLISH_RETRY, broker_configured

log = logging.getLogger(__name__)
# MongoDB's codes for "try again": interrupted, primary stepped down or not reachable, shutting down.
TRANSIENT_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}


# long jobs: their own threads (embedded) or queue (CELERY_IMPORT_QUEUE)
IMPORT_JOBS = {"crm.run_import", "crm.rfm_pass", "crm.flows_sweep"}


class QueueUnavailable(Exception):
    """The broker did not take the job (unreachable): the caller should undo and answer 503."""


def transient(exc):
    """True for errors worth retrying: the database or the broker away for a moment."""
    if isinstance(exc, (ConnectionFailure, QueueUnavailable, OperationalError)):
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in TRANSIENT_CODES or exc.has_error_label("RetryableWriteError")
    return False


class Pool:
    """The embedded mode's background threads, with a count of jobs not yet finished (a job
    waiting to be retried counts)."""

    def __init__(self, app, threads, name="engine"):
        self.app = app
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._busy = 0
        self._idle = threading.Condition()
        self._closed = False

    def submit(self, name, *args):
        """Run job ``name`` (:data:`engine.jobs.BY_NAME`) with ``args`` on a pool thread, in an app
        context."""
        with self._idle:
            self._busy += 1
        self._executor.submit(self._run, name, args, 0)

    def _run(self, name, args, attempt):
        from engine import jobs

        retry_in = None
        try:
            with self.app.app_context():
                try:
                    jobs.BY_NAME[name](*args)
                except Exception as exc:  # never a stranded campaign or import (engine.jobs)
                    if jobs.may_retry(exc, attempt) and not self._closed:
                        retry_in = jobs.backoff(attempt)
                        log.warning("engine job %s%r met %s: retry %d in %.1fs", name, args,
                                    type(exc).__name__, attempt + 1, retry_in)
                    else:
                        log.exception("engine job %s%r failed", name, args)
                        jobs.give_up(name, args, exc)
        finally:
            if retry_in is not None:
                timer = threading.Timer(retry_in, self._again, (name, args, attempt + 1))
                timer.daemon = True
                timer.start()
            else:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _again(self, name, args, attempt):
        try:
            self._executor.submit(self._run, name, args, attempt)
        except RuntimeError:  # shut down meanwhile
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout=None):
        """Block until every submitted job has finished; False if ``timeout`` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def shutdown(self):
        """Stop taking jobs (running ones finish; none is retried)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


def submit(name, *args):
    """Queue job ``name`` (a task name in :mod:`engine.tasks`) with JSON-able ``args``."""
    app = current_app._get_current_object()
    if broker_configured(app):
        try:
            app.extensions[CELERY].send_task(name, args=args, retry=True, retry_policy=PUBLISH_RETRY)
        except (OperationalError, OSError) as exc:
            log.warning("broker refused job %s: %s", name, exc)
            raise QueueUnavailable(str(exc)) from exc
        return
    state = app.extensions["engine"]
    (state.import_pool if name in IMPORT_JOBS else state.pool).submit(name, *args)
