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

from services.queue import EXTENSION as CELERY
from services.queue import PUBLISH_RETRY, broker_configured

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The broker did not take the job (unreachable): the caller should undo and answer 503."""


class Pool:
    """The embedded mode's background threads, with a count of jobs not yet finished."""

    def __init__(self, app, threads):
        self.app = app
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="engine")
        self._busy = 0
        self._idle = threading.Condition()

    def submit(self, function, *args):
        """Run ``function(*args)`` on a pool thread, in an app context."""
        with self._idle:
            self._busy += 1
        self._executor.submit(self._run, function, args)

    def _run(self, function, args):
        try:
            with self.app.app_context():
                function(*args)
        except Exception:  # the sweep picks up whatever this job left PENDING
            log.exception("engine job %s%r failed", function.__name__, args)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout=None):
        """Block until every submitted job has finished; False if ``timeout`` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def shutdown(self):
        """Stop taking jobs (running ones finish)."""
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
    from engine import jobs

    app.extensions["engine"].pool.submit(jobs.BY_NAME[name], *args)
