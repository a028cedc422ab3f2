"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""
from flask import Blueprint

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


def init_app(app):
    """Mount the probes at the root (outside /api, where orchestrators expect them)."""
    app.register_blueprint(bp)
