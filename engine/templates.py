"""Message personalisation: placeholders for every customer field, with fallbacks, and nothing else.

Placeholders: ``{{name}}``, ``{{firstName}}``, ``{{lastName}}``, ``{{email}}``, ``{{totalSpend}}``,
``{{numVisits}}``, ``{{lastVisitDate}}``, ``{{tags}}``, ``{{customerSince}}`` and ``{{unsubscribeUrl}}``
(the recipient's signed one-click unsubscribe link). A fallback for an empty value:
``{{ firstName | default("there") }}`` (a quoted text; the only filter there is).

Templates run in Jinja's sandbox and are checked at creation to contain nothing but text, those
placeholders and that filter: no calls, attribute access, loops or other code. HTML bodies are
rendered with every value HTML-escaped; subjects and text bodies as they are.
"""
from functools import lru_cache
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

PLACEHOLDERS = ("name", "firstName", "lastName", "email", "totalSpend", "numVisits", "lastVisitDate", "tags",
                "customerSince", "unsubscribeUrl")
FALLBACK_FILTER = "default"
_ALLOWED_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Filter, nodes.Const)
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


def check_template(text):
    """Raise :class:`TemplateProblem` unless ``text`` uses only the allowed placeholders and the
    ``default("…")`` fallback; return the placeholders it uses, sorted."""
    try:
        tree = _text_env.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"Template syntax error: {exc.message}") from exc
    names = set()
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateProblem(f"Only placeholders like {{{{name}}}} are allowed: {_allowed()}, with an "
                                  'optional fallback: {{ firstName | default("there") }}')
        if isinstance(node, nodes.Filter):
            _check_filter(node)
        if isinstance(node, nodes.Name):
            names.add(node.name)
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        raise TemplateProblem("Unknown placeholder(s): " + ", ".join("{{%s}}" % n for n in sorted(unknown))
                              + f"; allowed: {_allowed()}")
    return sorted(names)


def _check_filter(node):
    simple = (node.name == FALLBACK_FILTER and isinstance(node.node, nodes.Name) and not node.kwargs
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
    }


# the customer fields the placeholders read (what the engine loads per recipient)
CUSTOMER_FIELDS = ("name", "email", "totalSpend", "numVisits", "lastVisitDate", "tags", "createdAt")


def render(text, customer, unsubscribe_url="", html=False, extra=None, url_encoded=False):
    """The template for one customer (``extra``: the engine's own values, see INTERNAL_PREFIX;
    ``url_encoded``: every value percent-encoded, for a link's path or query)."""
    context = context_for(customer, unsubscribe_url)
    if url_encoded:
        context = {key: quote(value, safe="") for key, value in context.items()}
    if extra:
        context.update(extra)
    return compiled(text, html).render(context)
