"""Reusable message templates: CRUD, content checked as a campaign's is (:mod:`engine.content`)."""
from mongoengine.errors import NotUniqueError

import engine
from controllers.common import get_or_404, modify_or_404, object_id_or_404, paginate, user_id
from errors import ApiError
from models import Template
from models.base import utcnow

CONTENT = ("subject", "preheader", "html", "text")


def _duplicate():
    return ApiError.conflict("A template with this name already exists", {"name": ["Already in use."]})


def checked(fields):
    """``prepare(fields)`` with its problems as a 400 naming each field."""
    try:
        return engine.prepare_content(fields)
    except engine.ContentProblem as exc:
        raise ApiError.validation(exc.errors, "Invalid content") from exc


def create_template(data, actor=None):
    """Save a template (the text body derived from the HTML when not given)."""
    content = checked({key: data.get(key) for key in CONTENT})
    try:
        return Template(name=data["name"], created_by=user_id(actor),
                        **{key: content[key] for key in (*CONTENT, "links")}).save(force_insert=True)
    except NotUniqueError as exc:
        raise _duplicate() from exc


def list_templates(query):
    """Newest first."""
    return paginate(Template.objects.order_by("-created_at", "-id"), query["page"], query["per_page"])


def get_template(template_id):
    """One template or 404."""
    return get_or_404(Template, "template", template_id)


def update_template(template_id, data):
    """Change some fields; the result is checked whole (a body must remain). The text body is kept
    when only the HTML changes; ``text: null`` derives it from the HTML again."""
    current = get_template(template_id)
    merged = {key: data[key] if key in data else getattr(current, key) for key in CONTENT}
    if not merged["html"] and not merged["text"]:
        if data.get("html", "") is None and data.get("text", "") is None:  # this body removes both
            raise ApiError.validation({"text": ["A template needs html, text or both."]})
        # the body is fine; with what the template holds now it would have no body (text: null on a
        # template without HTML derives nothing)
        raise ApiError.conflict("This template would have no body left",
                                {"text": ["A template needs html, text or both: this one has no HTML."]})
    content = checked(merged)
    changes = {"set__updated_at": utcnow(), "set__links": content["links"]}
    for key in CONTENT:
        if content.get(key) is None:
            changes[f"unset__{key}"] = True
        else:
            changes[f"set__{key}"] = content[key]
    if "name" in data:
        changes["set__name"] = data["name"]
    return modify_or_404(Template, "template", template_id, _duplicate(), **changes)


def delete_template(template_id):
    """Delete a template (campaigns made from it keep their copy)."""
    if Template.objects(pk=object_id_or_404("template", template_id)).delete() == 0:
        raise ApiError.not_found("template", template_id)
