"""``/healthz`` (the process answers), ``/readyz`` (its dependencies answer) and ``/metrics``
(Prometheus)."""
from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from controllers import metrics
from controllers.health import readiness
from errors import error_response
from routes.endpoint import endpoint
from schemas.health import HealthOut, ReadyOut

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@endpoint(public=True, response=HealthOut)
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
@endpoint(public=True, response=ReadyOut, errors=(503,),
          description="Pings the database (and the message broker once one is configured); "
                      "503 names what is down.")
def readyz():
    """Every dependency answers."""
    checks = readiness()
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        return error_response(503, f"Not ready: {', '.join(down)} unavailable", checks=checks)
    return {"status": "ready", "checks": checks}


@bp.get("/metrics")
@endpoint(public=True, content_type="text/plain", errors=(401, 404),
          description="Prometheus metrics, in its text format: request latency by route template and "
                      "status, messages by outcome, deferrals by reason, receipts, import rows, database "
                      "errors (added up over every process sharing `PROMETHEUS_MULTIPROC_DIR`), and, read "
                      "at scrape time, campaigns and imports by status and tasks waiting per queue. Needs "
                      "`Authorization: Bearer <METRICS_TOKEN>`; 404 when no token is set (metrics off).")
def metrics_text():
    """Prometheus metrics."""
    metrics.check_token(current_app.config, request.headers.get("Authorization"))
    return Response(metrics.exposition(current_app), mimetype=CONTENT_TYPE_LATEST)


def init_app(app):
    """Mount the probes at the root (outside /api, where orchestrators expect them)."""
    app.register_blueprint(bp)
