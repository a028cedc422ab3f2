"""``/api/audit``: the audit log (admin)."""
from flask import Blueprint

from apidocs import doc
from controllers import audit as controller
from routes.helpers import dumped_page, load_query
from schemas.audit import AuditEventOut, AuditPage, AuditQuery

bp = Blueprint("audit", __name__)
audit_query, event_out = AuditQuery(), AuditEventOut()


@bp.get("")
@doc(query=AuditQuery, response=AuditPage, errors=(403,))
def list_events():
    """Who did what: newest first."""
    return dumped_page(event_out, controller.list_events(load_query(audit_query)))
