"""Saved segments and audience previews."""
from mongoengine.errors import NotUniqueError

from controllers.common import get_or_404, modify_or_404, object_id_or_404, paginate, user_id
from errors import ApiError
from models import Campaign, Customer, Segment
from models.base import utcnow
from models.campaign import PAUSED, SCHEDULED, SENDING
from schemas.attribute import rule_fields
from segments import RuleError, as_group, compile_group, compile_rules, path_text

SAMPLE_SIZE = 10


def _duplicate():
    return ApiError.conflict("A segment with this name already exists", {"name": ["Already in use."]})


def create_segment(data, actor=None):
    """Save a named rule tree."""
    try:
        return Segment(
            name=data["name"], rules=as_group(data["rules"], data["logical_operator"]),
            created_by=user_id(actor),
        ).save(force_insert=True)
    except NotUniqueError as exc:
        raise _duplicate() from exc


def list_segments(query):
    """Newest first."""
    return paginate(Segment.objects.order_by("-created_at", "-id"), query["page"], query["per_page"])


def get_segment(segment_id):
    """One segment or 404."""
    return get_or_404(Segment, "segment", segment_id)


def get_segment_with_size(segment_id):
    """One segment with ``audience_size``, its audience counted now."""
    segment = get_segment(segment_id)
    segment.audience_size = Customer.objects(__raw__=stored_audience(segment.rules)).count()
    return segment


def update_segment(segment_id, data):
    """Rename and/or replace the rules."""
    changes = {"set__updated_at": utcnow()}
    if "name" in data:
        changes["set__name"] = data["name"]
    if "rules" in data:
        changes["set__rules"] = as_group(data["rules"], data.get("logical_operator", "AND"))
    return modify_or_404(Segment, "segment", segment_id, _duplicate(), **changes)


def delete_segment(segment_id):
    """Delete a segment no active campaign depends on."""
    pk = object_id_or_404("segment", segment_id)
    if Campaign.objects(segment_id=pk, status__in=[SCHEDULED, SENDING, PAUSED]).count():
        raise ApiError.conflict("A scheduled, sending or paused campaign uses this segment")
    if Segment.objects(pk=pk).delete() == 0:
        raise ApiError.not_found("segment", segment_id)


def stored_audience(rules):
    """The filter of stored rules; a 409 naming the problem when they no longer compile (an attribute
    they use was deleted in a race with their last save)."""
    try:
        return compile_group(rules, fields=rule_fields())
    except RuleError as exc:
        raise ApiError.conflict("The saved rules no longer compile: change them",
                                {path_text(exc.path): [exc.message]}) from exc


def audience(rules, logical_operator="AND"):
    """The customers a rule list selects now (a queryset: filtering and counting stay in the database)."""
    return Customer.objects(__raw__=compile_rules(rules, logical_operator, fields=rule_fields()))


def preview(data):
    """How many customers the rules (or the saved segment ``segment_id``) select now, and the first
    few of them."""
    if data.get("segment_id") is not None:
        return preview_segment(str(data["segment_id"]))
    return _preview(audience(data["rules"], data["logical_operator"]))


def preview_segment(segment_id):
    """:func:`preview` of a saved segment's rules."""
    return _preview(Customer.objects(__raw__=stored_audience(get_segment(segment_id).rules)))


def _preview(queryset):
    sample = list(queryset.only("name", "email").order_by("id").limit(SAMPLE_SIZE))
    return {"audience_size": queryset.count(), "sample": sample}
