"""Message personalisation: placeholders for every customer field, with fallbacks, and nothing else.

Placeholders: ``{{name}}``, ``{{firstName}}``, ``{{lastName}}``, ``{{email}}``, ``{{totalSpend}}``,
``{{numVisits}}``, ``{{lastVisitDate}}``, ``{{tags}}``, ``{{customerSince}}`` and ``{{unsubscribeUrl}}``
(the recipient's signed one-click unsubscribe link), and ``{{ attributes.<key> }}`` for each declared
custom attribute (empty when the customer has no value; lists joined by ", ", dates as YYYY-MM-DD).
A fallback for an empty value: ``{{ firstName | default("there") }}`` (a quoted text; the only filter
there is).

Templates run in Jinja's sandbox and are checked at creation to contain nothing but text, those
placeholders and that filter: no calls, attribute access (but ``attributes.<key>``), loops or other
code. HTML bodies are
rendered with every value HTML-escaped; subjects and text bodies as they are.
"""
import re
from functools import lru_cache
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

from models.attribute import KEY_PATTERN

PLACEHOLDERS = ("name", "firstName", "lastName", "email", "totalSpend", "numVisits", "lastVisitDate", "tags",
                "customerSince", "unsubscribeUrl")
FALLBACK_FILTER = "default"
ATTRIBUTES = "attributes"  # {{ attributes.<key> }}: a declared custom attribute's value
_ALLOWED_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Filter, nodes.Const,
                  nodes.Getattr)
# names the engine itself adds to the message it builds (tracked links, the pixel, the preheader);
# a marketer's template can never use them (check_template allows PLACEHOLDERS only)
INTERNAL_PREFIX = "crm__"


def _fallback(value, text=""):
    """``default``: the value, or ``text`` when the value is empty (unlike Jinja's, which only
    replaces undefined values: every placeholder here is defined, possibly empty)."""
    return text if value in ("", None) else value


def _environment(autoescape):
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=True)
    env.filters = {FALLBACK_FILTER: _fallback}
    return env


_text_env, _html_env = _environment(False), _environment(True)


class TemplateProblem(ValueError):
    """The message is not a valid template."""


def _allowed():
    return ", ".join("{{%s}}" % p for p in PLACEHOLDERS)


def check_template(text, attribute_keys=None):
    """Raise :class:`TemplateProblem` unless ``text`` uses only the allowed placeholders and the
    ``default("…")`` fallback; return the placeholders it uses, sorted (``attributes.<key>`` for an
    attribute's). With ``attribute_keys`` (the declared ones) an undeclared attribute is a problem."""
    try:
        tree = _text_env.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"Template syntax error: {exc.message}") from exc
    names, bases = set(), set()
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateProblem(f"Only placeholders like {{{{name}}}} are allowed: {_allowed()}, with an "
                                  'optional fallback: {{ firstName | default("there") }}')
        if isinstance(node, nodes.Filter):
            _check_filter(node)
        if isinstance(node, nodes.Getattr):
            if not (isinstance(node.node, nodes.Name) and node.node.name == ATTRIBUTES
                    and re.match(KEY_PATTERN, node.attr)):
                raise TemplateProblem("Only a custom attribute is written with a dot: {{ attributes.plan }}")
            bases.add(id(node.node))
            names.add(f"{ATTRIBUTES}.{node.attr}")
        elif isinstance(node, nodes.Name) and node.name == ATTRIBUTES:
            if id(node) not in bases:
                raise TemplateProblem("Name the attribute: {{ attributes.plan }}")
        elif isinstance(node, nodes.Name):
            names.add(node.name)
    if attribute_keys is not None:
        undeclared = sorted(name for name in names if name.startswith(ATTRIBUTES + ".")
                            and name[len(ATTRIBUTES) + 1:] not in attribute_keys)
        if undeclared:
            raise TemplateProblem("Not declared attribute(s): " + ", ".join("{{%s}}" % n for n in undeclared)
                                  + " (see /api/attributes)")
    unknown = {name for name in names if not name.startswith(ATTRIBUTES + ".")} - set(PLACEHOLDERS)
    if unknown:
        raise TemplateProblem("Unknown placeholder(s): " + ", ".join("{{%s}}" % n for n in sorted(unknown))
                              + f"; allowed: {_allowed()}")
    return sorted(names)


def _check_filter(node):
    simple = (node.name == FALLBACK_FILTER and isinstance(node.node, (nodes.Name, nodes.Getattr)) and not node.kwargs
              and node.dyn_args is None and node.dyn_kwargs is None and len(node.args) <= 1
              and all(isinstance(a, nodes.Const) and isinstance(a.value, str) for a in node.args))
    if not simple:
        raise TemplateProblem('The only filter is a fallback for a placeholder: {{ firstName | default("there") }}')


@lru_cache(maxsize=256)
def compiled(text, html=False):
    """The compiled template (HTML ones escape every value)."""
    return (_html_env if html else _text_env).from_string(text)


def _money(value):
    return f"{float(value or 0):.2f}".rstrip("0").rstrip(".")


def _day(value):
    return value.strftime("%Y-%m-%d") if value is not None else ""


def context_for(customer, unsubscribe_url=""):
    """The placeholder values for a customer document (raw dict from MongoDB)."""
    words = (customer.get("name") or "").split()
    return {
        "unsubscribeUrl": unsubscribe_url,
        "name": " ".join(words),
        "firstName": words[0] if words else "",
        "lastName": " ".join(words[1:]),
        "email": customer.get("email") or "",
        "totalSpend": _money(customer.get("totalSpend")),
        "numVisits": str(customer.get("numVisits") or 0),
        "lastVisitDate": _day(customer.get("lastVisitDate")),
        "tags": ", ".join(customer.get("tags") or ()),
        "customerSince": _day(customer.get("createdAt")),
        ATTRIBUTES: _Attributes({key: _attribute_text(value)
                                 for key, value in (customer.get("attributes") or {}).items()}),
    }


class _Attributes(dict):
    """A customer's attribute values as text; an attribute they have no value of is empty."""

    def __missing__(self, key):
        return ""


def _attribute_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if hasattr(value, "strftime"):
        return _day(value)
    if isinstance(value, float):
        return _money(value)
    return "" if value is None else str(value)


# the customer fields the placeholders read (what the engine loads per recipient)
CUSTOMER_FIELDS = ("name", "email", "totalSpend", "numVisits", "lastVisitDate", "tags", "createdAt", "attributes")


def render(text, customer, unsubscribe_url="", html=False, extra=None, url_encoded=False):
    """The template for one customer (``extra``: the engine's own values, see INTERNAL_PREFIX;
    ``url_encoded``: every value percent-encoded, for a link's path or query)."""
    context = context_for(customer, unsubscribe_url)
    if url_encoded:
        context = {key: _Attributes({k: quote(v, safe="") for k, v in value.items()}) if key == ATTRIBUTES
                   else quote(value, safe="") for key, value in context.items()}
    if extra:
        context.update(extra)
    return compiled(text, html).render(context)
