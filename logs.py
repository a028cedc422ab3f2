"""Logging: one line per request (JSON by default), request ids on every line and error body."""
import logging
import re
import sys
import time
import uuid

from flask import g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HANDLER_MARK = "_crm_handler"
access_log = logging.getLogger("crm.access")


# Any address the API accepts: a dot-atom local part in any script, or a quoted one (raw, or with the
# quotes escaped as in a JSON line); a domain that is a name (any script, dots optional) or an address
# literal [...]. Quotes and backslashes around an address are left alone, so a JSON line stays JSON.
_QUOTED = r'\\"[^"\\]*\\"|(?<![^\s<(])"[^"\\\r\n]*"'  # raw: opening a word, not closing a JSON string
_ATOM = r"""[^\s<>()\[\],;:@"'\\/=?&#]+"""  # not across a path's / or a query's = ? & #
_DOMAIN = r"""\[[^\]\s"\\]*\]|[^\s<>()\[\],;:@"'\\]+"""
EMAIL = re.compile(f"(?:({_QUOTED})|({_ATOM}))@({_DOMAIN})")


def _masked(match):
    quoted, atom, domain = match.groups()
    return ("" if quoted else atom[0]) + "***@" + domain


def mask_emails(text):
    """``ada.lovelace@example.com`` → ``a***@example.com``: logs keep the domain, never the address
    (``"quoted"@x`` → ``***@x``)."""
    return EMAIL.sub(_masked, text)


class EmailMaskingFormatter(logging.Formatter):
    """Formats with ``inner``, then masks every email address in the line (message, arguments,
    tracebacks alike): a vendor's refusal or a failed query must not leak customers into the logs."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def format(self, record):
        return mask_emails(self.inner.format(record))


class RequestIdFilter(logging.Filter):
    """Stamp every record made during a request with that request's id."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure_logging(app):
    """Install one stderr handler on the root logger: ``LOG_FORMAT`` json (default) or text."""
    level = getattr(logging, str(app.config.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    if app.config.get("LOG_FORMAT", "json") == "text":
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    else:
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(process)d",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
            json_ensure_ascii=False,  # UTF-8 lines: an address in any script is masked as written
        )
    handler.setFormatter(EmailMaskingFormatter(formatter))
    handler.addFilter(RequestIdFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    app.logger.setLevel(level)


def _incoming_request_id():
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    return supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex


def init_request_logging(app):
    """Assign request ids first thing, and log each request once it is answered."""

    @app.before_request
    def start_request():
        g.request_id = _incoming_request_id()
        g.request_started = time.perf_counter()

    @app.after_request
    def finish_request(response):
        request_id = g.get("request_id") or _incoming_request_id()
        response.headers[REQUEST_ID_HEADER] = request_id
        if not access_log.isEnabledFor(logging.INFO):
            return response
        duration_ms = round((time.perf_counter() - g.get("request_started", time.perf_counter())) * 1000, 2)
        user = g.get("_login_user")
        user_id = user.get_id() if user is not None and user.is_authenticated else None
        access_log.info(
            "%s %s %s %.2fms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "user_id": user_id,
                "request_id": request_id,
            },
        )
        return response
