"""The task queue (Celery). Without ``CELERY_BROKER_URL`` tasks run eagerly in this process.

With a broker (RabbitMQ), a separate worker runs them: ``celery -A worker worker``, with
``celery -A worker beat`` for scheduled campaigns. Tasks are acknowledged late, so a batch whose
worker dies before finishing is redelivered to another worker rather than lost.
"""
from celery import Celery, Task

EXTENSION = "celery"
# Publishing (tasks, events) gives up quickly when the broker is down: the request is waiting.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def init_app(app):
    """A Celery app bound to this Flask app (tasks run inside its app context)."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    broker = app.config.get("CELERY_BROKER_URL")
    celery = Celery(app.import_name, task_cls=FlaskTask, include=["engine.tasks"])
    celery.conf.update(
        broker_url=broker or "memory://",
        task_always_eager=not broker,
        task_eager_propagates=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # A batch whose broker connection is lost will be redelivered: stop working on it here.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=app.config["CELERY_QUEUE"],
        task_routes={"crm.run_import": {"queue": import_queue(app.config)},  # a worker of their own
                     "crm.rfm_pass": {"queue": import_queue(app.config)},  # long, like an import
                     "crm.flows_sweep": {"queue": import_queue(app.config)}},
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
        beat_schedule={
            "start-due-campaigns": {
                "task": "crm.start_due_campaigns",
                "schedule": app.config["SCHEDULER_INTERVAL_S"],
            }
        },
    )
    celery.set_default()
    app.extensions[EXTENSION] = celery
    return celery


def import_queue(config):
    """Where CSV imports are queued: ``CELERY_IMPORT_QUEUE``, else ``<CELERY_QUEUE>-imports``."""
    return config.get("CELERY_IMPORT_QUEUE") or f"{config['CELERY_QUEUE']}-imports"


def broker_configured(app):
    """True when tasks go to a real broker and worker."""
    return bool(app.config.get("CELERY_BROKER_URL"))


def depths(app):
    """``{queue: messages waiting}`` for this app's task queues, asked of the broker (a passive declare:
    nothing is created); a queue the broker does not have yet is left out. Raises when the broker is
    unreachable."""
    celery = app.extensions[EXTENSION]
    found = {}
    with celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        for name in (app.config["CELERY_QUEUE"], import_queue(app.config)):
            channel = connection.channel()
            try:
                found[name] = channel.queue_declare(queue=name, passive=True).message_count
            except connection.channel_errors:  # not declared yet: no worker has started on it
                pass
            finally:
                try:
                    channel.close()
                except connection.connection_errors + connection.channel_errors:
                    pass
    return found
