"""Reading the audit log."""
from controllers.common import paginate
from models import AuditEvent


def list_events(query):
    """Newest first, filtered by action, actor and time."""
    filters = {}
    if "action" in query:
        filters["action"] = query["action"]
    if "actor" in query:
        filters["actor_id"] = query["actor"]
    if "date_from" in query:
        filters["at__gte"] = query["date_from"]
    if "date_to" in query:
        filters["at__lte"] = query["date_to"]
    return paginate(AuditEvent.objects(**filters).order_by("-at", "-id"), query["page"], query["per_page"])
