"""Reading the audit log."""
from controllers.common import filters_from, paginate
from models import AuditEvent


def list_events(query):
    """Newest first, filtered by action, actor and time."""
    filters = filters_from(query, {"action": "action", "actor": "actor_id",
                                   "date_from": "at__gte", "date_to": "at__lte"})
    return paginate(AuditEvent.objects(**filters).order_by("-at", "-id"), query["page"], query["per_page"])
