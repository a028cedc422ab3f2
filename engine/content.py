"""A campaign's message: subject, preheader, HTML and text bodies, checked once and built per recipient.

- **Checked at creation** (:func:`prepare`): every part is a personalisation template
  (:mod:`engine.templates`); a text body is derived from the HTML when only HTML is given
  (inscriptis, links kept as ``[text](url)``); the HTML's http(s) links are listed, in order. That
  list is the campaign's ``links``: a click token names an index in it, never a URL.
- **Built per recipient** (:func:`build`): the HTML gets the preheader (hidden, first in the body),
  its links rewritten to this server's click URL and a 1×1 pixel before ``</body>``, as the
  campaign's ``tracking`` asks. The unsubscribe link is never rewritten. Rendering happens at send
  time, from the customer's data then; nothing personal is stored per delivery.
"""
import re
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

from inscriptis import get_text
from inscriptis.model.config import ParserConfig

from engine.templates import INTERNAL_PREFIX, TemplateProblem, check_template, render
from schemas.attribute import declared_types
from services.unsubscribe import example_url

MAX_LINKS = 200  # tracked links per message (a click token holds the index in two bytes)
_HREF = re.compile(r"""(\shref\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""", re.IGNORECASE)
_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_PIXEL = ('<img src="{{ %sopen }}" width="1" height="1" alt="" '
          'style="display:block;border:0;width:1px;height:1px">' % INTERNAL_PREFIX)
_PREHEADER = ('<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">'
              '{{ %spreheader }}</div>' % INTERNAL_PREFIX)
_TEXT_CONFIG = ParserConfig(display_links=True)


@dataclass(frozen=True)
class Message:
    """One recipient's rendered message."""

    subject: str
    text: str
    html: str | None = None


def _tracked(href):
    value = href.strip()
    return urlsplit(value).scheme.lower() in ("http", "https") and "unsubscribeUrl" not in value


class _Links(HTMLParser):
    """Finds ``<a href>`` start tags (their source text and offset) whose link is tracked."""

    def __init__(self, source):
        super().__init__(convert_charrefs=True)
        self.lines = [0]  # where each line starts (the parser counts lines by "\n" only)
        for line in source.split("\n"):
            self.lines.append(self.lines[-1] + len(line) + 1)
        self.found = []  # (offset, tag source, href)

    def handle_starttag(self, tag, attrs):
        if tag != "a":
            return
        href = dict(attrs).get("href")
        if href and _tracked(href):
            line, column = self.getpos()
            self.found.append((self.lines[line - 1] + column, self.get_starttag_text(), href.strip()))


def links_of(html):
    """The HTML's tracked links (http(s), not the unsubscribe link), in order; raises
    :class:`TemplateProblem` for a link whose scheme or host is a placeholder (a link may carry
    personal values in its path or query, never choose where it goes)."""
    return [href for _, _, href in _scan(html)]


@lru_cache(maxsize=64)
def _scan(html):
    parser = _Links(html)
    parser.feed(html)
    parser.close()
    for _, _, href in parser.found:
        parts = urlsplit(href)
        if "{" in parts.scheme + parts.netloc or "%" in parts.netloc or not parts.netloc:
            raise TemplateProblem(f"The link {href[:100]!r} must name its host without placeholders.")
    if len(parser.found) > MAX_LINKS:
        raise TemplateProblem(f"At most {MAX_LINKS} links can be tracked in one message.")
    return tuple(parser.found)


def derive_text(html):
    """A text body for an HTML one (links as ``[text](url)``)."""
    return get_text(html, _TEXT_CONFIG).strip() + "\n"


@lru_cache(maxsize=64)
def tracked_html(html, opens, clicks, preheader):
    """The HTML template the engine renders per recipient: preheader, rewritten links, pixel."""
    out = html
    if clicks:
        pieces, done = [], 0
        for index, (offset, tag, _) in enumerate(_scan(html)):
            pieces.append(out[done:offset])
            pieces.append(_HREF.sub(lambda m, i=index: f'{m.group(1)}"{{{{ {INTERNAL_PREFIX}link{i} }}}}"',
                                    tag, count=1))
            done = offset + len(tag)
        pieces.append(out[done:])
        out = "".join(pieces)
    if preheader:
        body = _BODY_OPEN.search(out)
        at = body.end() if body else 0
        out = out[:at] + _PREHEADER + out[at:]
    if opens:
        closes = list(_BODY_CLOSE.finditer(out))
        at = closes[-1].start() if closes else len(out)
        out = out[:at] + _PIXEL + out[at:]
    return out


def prepare(fields):
    """Check a campaign's (or template's) content and complete it: ``{subject, preheader, html,
    text, links}``; raises :class:`ContentProblem` naming the field."""
    problems, declared = {}, set(declared_types())
    for name in ("subject", "preheader", "html", "text"):
        if fields.get(name):
            try:
                check_template(fields[name], declared)
            except TemplateProblem as exc:
                problems[name] = [str(exc)]
    html = fields.get("html")
    links = []
    if html and "html" not in problems:
        try:
            links = links_of(html)
        except TemplateProblem as exc:
            problems["html"] = [str(exc)]
    text = fields.get("text")
    if html and not text and "html" not in problems:
        text = derive_text(html)
        try:
            check_template(text, declared)
        except TemplateProblem as exc:
            problems["text"] = [f"The text derived from the HTML is not a valid template ({exc}): give text."]
    if problems:
        raise ContentProblem(problems)
    return {**fields, "text": text, "links": links}


class ContentProblem(ValueError):
    """Content that cannot be sent: ``errors`` maps each field to its messages."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def build(content, customer, unsubscribe_url="", open_url=None, click_url=None):
    """One recipient's :class:`Message`. ``content``: subject, preheader, html, text, tracking;
    ``open_url`` and ``click_url(index)`` give the tracking URLs (None: untracked, as in previews)."""
    subject = render(content["subject"], customer, unsubscribe_url)
    text = render(content["text"], customer, unsubscribe_url)
    html = content.get("html")
    if not html:
        return Message(subject, text)
    tracking = content.get("tracking") or {}
    opens = bool(tracking.get("opens", True)) and open_url is not None
    clicks = bool(tracking.get("clicks", True)) and click_url is not None
    preheader = content.get("preheader")
    extra = {}
    if preheader:
        extra[INTERNAL_PREFIX + "preheader"] = render(preheader, customer, unsubscribe_url)
    if opens:
        extra[INTERNAL_PREFIX + "open"] = open_url
    if clicks:
        extra.update((f"{INTERNAL_PREFIX}link{i}", click_url(i)) for i in range(len(_scan(html))))
    source = tracked_html(html, opens, clicks, bool(preheader))
    return Message(subject, text, render(source, customer, unsubscribe_url, html=True, extra=extra))


def link_target(link, customer):
    """Where a click on ``link`` (a campaign's link template) goes for ``customer``: its placeholders
    filled with URL-encoded values (the scheme and host are fixed: see :func:`links_of`)."""
    if "{" not in link:
        return link
    return render(link, customer, url_encoded=True)


def preview(campaign, customer):
    """``{subject, preheader, html, text}`` of ``campaign`` for ``customer``, untracked; its
    unsubscribe link is an example that unsubscribes nobody."""
    fields = campaign.content()
    built = build(fields, customer, example_url("preview"))
    preheader = render(fields["preheader"], customer) if fields.get("preheader") else None
    return {"subject": built.subject, "preheader": preheader, "html": built.html, "text": built.text}
