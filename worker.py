"""Celery entry point: ``celery -A worker worker`` (and ``celery -A worker beat``).

A worker is a separate process, so it needs the shared, real MongoDB (``MONGO_URI``) and a broker
(``CELERY_BROKER_URL``); it refuses to start otherwise.
"""
import sys

from celery.signals import worker_process_init

from app import create_app, start_serving
from models import init_db

flask_app = create_app()
if not flask_app.config.get("MONGO_URI") or not flask_app.config.get("CELERY_BROKER_URL"):
    sys.exit(
        "A Celery worker needs MONGO_URI (a real MongoDB shared with the web server: the embedded "
        "database lives inside one process) and CELERY_BROKER_URL."
    )
start_serving(flask_app)
celery = flask_app.extensions["celery"]


@worker_process_init.connect
def _connect_after_fork(**_):
    """Each prefork child opens its own MongoDB client: pymongo clients are not fork-safe."""
    init_db(flask_app)
