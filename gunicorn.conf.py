"""gunicorn settings, read from this directory by every ``gunicorn wsgi:app`` (serve.sh, tests).

Requests gunicorn refuses before the app sees them (a request line over ``limit_request_line``, too
many or too large headers, a malformed request) get the API's JSON error shape instead of gunicorn's
HTML page. gunicorn formats all of them in one function, ``gunicorn.util.write_error``; it is
replaced here, in the server's own configuration, rather than forked.
"""
import json

from gunicorn import util

control_socket_disable = True  # gunicorn 27 would otherwise create one under ~/.gunicorn


def write_json_error(sock, status_int, reason, mesg):
    """gunicorn's error response, as ``{"error": ...}``."""
    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = write_json_error
