"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer)."""
from flask import Blueprint, jsonify
from marshmallow import Schema, fields

from apidocs import doc
from controllers.health import readiness
from errors import error_response

bp = Blueprint("health", __name__)


class HealthOut(Schema):
    """Liveness."""

    status = fields.String(required=True)


class ReadyOut(Schema):
    """Readiness, with the state of each dependency."""

    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


@bp.get("/healthz")
@doc(public=True, response=HealthOut)
def healthz():
    """The process is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@doc(public=True, response=ReadyOut, errors=(503,),
     description="Pings the database (and the message broker once one is configured); "
                 "503 names what is down.")
def readyz():
    """Every dependency answers."""
    checks = readiness()
    down = sorted(name for name, state in checks.items() if state != "ok")
    if down:
        return error_response(503, f"Not ready: {', '.join(down)} unavailable", checks=checks)
    return jsonify({"status": "ready", "checks": checks})


def init_app(app):
    """Mount the probes at the root (outside /api, where orchestrators expect them)."""
    app.register_blueprint(bp)
