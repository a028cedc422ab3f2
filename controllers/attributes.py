"""Custom attribute definitions: declared once, then carried by customers and used in rules."""
from mongoengine.errors import NotUniqueError

from controllers.common import paginate, user_id
from errors import ApiError
from models import AttributeDefinition, Campaign, Customer, Flow, Segment
from models.attribute import MAX_ATTRIBUTES
from models.base import utcnow
from models.campaign import DRAFT, PAUSED, SCHEDULED, SENDING
from models.flow import ARCHIVED
from segments.compiler import MAX_DEPTH


def _duplicate(key):
    return ApiError.conflict(f"The attribute {key} is already declared", {"key": ["Already declared."]})


def create_attribute(data, actor=None):
    """Declare an attribute; 409 when the key is taken or :data:`MAX_ATTRIBUTES` are declared."""
    if AttributeDefinition.objects.count() >= MAX_ATTRIBUTES:
        raise ApiError.conflict(f"At most {MAX_ATTRIBUTES} attributes can be declared",
                                {"key": [f"{MAX_ATTRIBUTES} are declared already: delete one first."]})
    try:
        return AttributeDefinition(key=data["key"], type=data["type"], description=data.get("description"),
                                   created_by=user_id(actor)).save(force_insert=True)
    except NotUniqueError as exc:
        raise _duplicate(data["key"]) from exc


def list_attributes(query):
    """Declared attributes by key."""
    return paginate(AttributeDefinition.objects.order_by("key"), query["page"], query["per_page"])


def get_attribute(key):
    """One definition or 404."""
    found = AttributeDefinition.objects(key=key).first()
    if found is None:
        raise ApiError.not_found("attribute", key)
    return found


def update_attribute(key, data):
    """Change the description (a type never changes: stored values would stop fitting it)."""
    changes = {"set__updated_at": utcnow()}
    if data["description"] is None:
        changes["unset__description"] = True
    else:
        changes["set__description"] = data["description"]
    found = AttributeDefinition.objects(key=key).modify(new=True, **changes)
    if found is None:
        raise ApiError.not_found("attribute", key)
    return found


def _using(field):
    """A filter for stored rule trees (``{op, rules}``) with a rule on ``field`` at any depth."""
    return {"$or": [{"rules" + ".rules" * depth + ".field": field} for depth in range(1, MAX_DEPTH + 1)]}


def _flows_using(key):
    """A filter for flows not archived whose trigger or steps use attribute ``key``: a rule at any
    depth (their rule lists are stored as lists), an update step setting it, an anniversary of it."""
    field = f"attributes.{key}"
    rules = [{f"{base}.rules" + ".rules" * depth + ".field": field} for base in ("trigger", "steps")
             for depth in range(MAX_DEPTH)]
    return {"status": {"$ne": ARCHIVED}, "$or": [*rules, {f"steps.attributes.{key}": {"$exists": True}},
                                                 {"trigger.attribute": key}]}


def delete_attribute(key):
    """Remove a definition and every customer's value of it; 409 while a segment or an unfinished
    campaign has a rule on it (naming them)."""
    get_attribute(key)
    using = _using(f"attributes.{key}")
    segments = [str(s.pk) for s in Segment.objects(__raw__=using).only("id").limit(20)]
    campaigns = [str(c.pk) for c in Campaign.objects(
        __raw__={"$and": [using, {"status": {"$in": [DRAFT, SCHEDULED, SENDING, PAUSED]}}]}).only("id").limit(20)]
    flows = [str(f.pk) for f in Flow.objects(__raw__=_flows_using(key)).only("id").limit(20)]
    if segments or campaigns or flows:
        errors = {}
        if flows:
            errors["flows"] = [f"Flow {ident} uses it (a rule, an update step or its anniversary)." for ident in flows]
        if segments:
            errors["segments"] = [f"Rules of segment {ident} use it." for ident in segments]
        if campaigns:
            errors["campaigns"] = [f"Rules of campaign {ident} use it." for ident in campaigns]
        raise ApiError.conflict(f"attributes.{key} is used in rules: change them first", errors)
    if AttributeDefinition.objects(key=key).delete() == 0:
        raise ApiError.not_found("attribute", key)
    Customer._get_collection().update_many({f"attributes.{key}": {"$exists": True}},
                                           {"$unset": {f"attributes.{key}": ""}})
