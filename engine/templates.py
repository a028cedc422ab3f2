"""Message personalisation: ``{{name}}``, ``{{firstName}}``, ``{{email}}``, ``{{totalSpend}}`` and
``{{unsubscribeUrl}}`` (the recipient's signed one-click unsubscribe link) only.

Templates run in Jinja's sandbox and are checked at creation to contain nothing but text and those
placeholders: no filters, calls, attribute access, loops or other code.
"""
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

PLACEHOLDERS = ("name", "firstName", "email", "totalSpend", "unsubscribeUrl")
_ALLOWED_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name)
_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateProblem(ValueError):
    """The message is not a valid template."""


def check_template(text):
    """Raise :class:`TemplateProblem` unless ``text`` uses only the allowed placeholders;
    return the placeholders it uses, sorted."""
    try:
        tree = _env.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"Template syntax error: {exc.message}") from exc
    names = set()
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateProblem(
                "Only placeholders like {{name}} are allowed: " + ", ".join("{{%s}}" % p for p in PLACEHOLDERS)
            )
        if isinstance(node, nodes.Name):
            names.add(node.name)
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        raise TemplateProblem(
            "Unknown placeholder(s): " + ", ".join("{{%s}}" % n for n in sorted(unknown))
            + "; allowed: " + ", ".join("{{%s}}" % p for p in PLACEHOLDERS)
        )
    return sorted(names)


@lru_cache(maxsize=64)
def _compiled(text):
    return _env.from_string(text)


def _money(value):
    return f"{float(value or 0):.2f}".rstrip("0").rstrip(".")


def context_for(customer, unsubscribe_url=""):
    """The placeholder values for a customer document (raw dict from MongoDB)."""
    name = customer.get("name") or ""
    return {
        "unsubscribeUrl": unsubscribe_url,
        "name": name,
        "firstName": name.split()[0] if name.split() else "",
        "email": customer.get("email") or "",
        "totalSpend": _money(customer.get("totalSpend")),
    }


def render(text, customer, unsubscribe_url=""):
    """The message for one customer."""
    return _compiled(text).render(context_for(customer, unsubscribe_url))
