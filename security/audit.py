"""Recording audit events."""
import logging

from flask import g, has_request_context, request
from flask_login import current_user

from logs import mask_emails
from models import AuditEvent

log = logging.getLogger(__name__)


def _actor():
    if current_user.is_authenticated:
        return current_user
    return g.get("actor")  # e.g. logout: the user as the request began


def _target_id(response):
    """The record's id: the answer's ``_id``, else the path's argument (an address in a path, as in
    ``PUT /customers/by-email/<email>`` or ``DELETE /suppressions/<email>``, is masked)."""
    if response.is_json and not response.is_streamed:
        body = response.get_json(silent=True)
        if isinstance(body, dict) and body.get("_id"):
            return str(body["_id"])
    if request.view_args:
        return mask_emails(str(next(iter(request.view_args.values()))))
    return None


def record(action, *, actor=None, via="session", target_type=None, target_id=None, details=None):
    """Store one event; a failure to store is logged, never turned into a failed request."""
    try:
        AuditEvent(
            action=action,
            actor_id=getattr(actor, "pk", None),
            actor_email=getattr(actor, "email", None),
            via=via,
            target_type=target_type,
            target_id=target_id,
            request_id=g.get("request_id") if has_request_context() else None,
            ip=request.remote_addr if has_request_context() else None,
            details=details or {},
        ).save()
    except Exception:  # the action already happened; losing its record must not hide that
        log.exception("could not record audit event %s", action)


def record_current(action, target_type, target_id=None, details=None):
    """An audit event by the current caller for something the policy table does not record itself
    (a search of customers, an erasure). Email addresses in ``details`` are masked: the audit log says
    who did it, not whose address they typed."""
    record(action, actor=_actor(), via=g.get("auth_via") or "session", target_type=target_type,
           target_id=target_id, details={key: mask_emails(str(value)) for key, value in (details or {}).items()})


def record_request(action, target_type, response):
    """The audit event of the current, successful request."""
    actor = _actor()
    target_id = _target_id(response)
    if target_type == "user" and target_id is None and actor is not None:
        target_id = str(actor.pk)
    record(
        action,
        actor=actor,
        via=g.get("auth_via") or "session",
        target_type=target_type,
        target_id=target_id,
        details={"method": request.method, "path": request.path, "status": response.status_code,
                 **g.get("audit_details", {})},
    )
