"""``/api/audit``: the audit log (admin)."""
from flask import Blueprint

from controllers import audit as controller
from routes.endpoint import endpoint
from schemas.audit import AuditPage, AuditQuery

bp = Blueprint("audit", __name__)


@bp.get("")
@endpoint(query=AuditQuery, response=AuditPage, errors=(403,))
def list_events(query):
    """Who did what: newest first."""
    return controller.list_events(query)
