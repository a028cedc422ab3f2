"""Legacy campaigns: count an audience from rules, record a campaign for it."""
from controllers.common import user_id
from models import CommunicationLog, Customer
from segments import compile_rules


def audience_query(data):
    """The MongoDB filter selecting the audience described by validated rules."""
    return compile_rules(data["rules"], data["logical_operator"])


def audience_size(data):
    """Count the matching customers in the database."""
    return Customer.objects(__raw__=audience_query(data)).count()


def create_campaign(data, user=None):
    """Record a campaign with its message, rules and the audience size at creation."""
    return CommunicationLog(
        message=data["message"],
        rules=data["rules"],
        logical_operator=data["logical_operator"],
        audience_size=audience_size(data),
        created_by=user_id(user),
    ).save(force_insert=True)


def list_campaigns(page, per_page):
    """Campaigns newest first, with the total count."""
    queryset = CommunicationLog.objects.order_by("-sent_at", "-id")
    total = queryset.count()
    return list(queryset.skip((page - 1) * per_page).limit(per_page)), total
