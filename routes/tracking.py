"""``/api/t``: the open pixel and click links in messages (no login: the signed token is the credential).

A token names one delivery and, for a click, a link's index in the campaign's stored links: a click
redirects only to a link the message contained. Unknown, changed or expired (erased) tokens are a 404
and record nothing. Responses are never cached and send no referrer onwards.
"""
import base64

from flask import Blueprint, Response, redirect, request

from controllers import tracking as controller
from routes.endpoint import endpoint

bp = Blueprint("tracking", __name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1×1 transparent GIF
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


def _who():
    return request.method, request.headers.get("User-Agent", ""), request.remote_addr


@bp.get("/o/<token>")
@endpoint(public=True, content_type="image/gif", response={"type": "string", "format": "binary"}, errors=(404,),
          description="Records an open (HEAD: recorded as a suspected bot) and answers a 1×1 GIF.")
def open_pixel(token):
    """The open-tracking pixel."""
    controller.record_open(token, *_who())
    return Response(PIXEL, content_type="image/gif", headers=NO_STORE)


@bp.get("/c/<token>")
@endpoint(public=True, status=302, errors=(404,),
          description="Records a click and redirects to the link the message contained at that index.")
def click(token):
    """A tracked link."""
    response = redirect(controller.record_click(token, *_who()), code=302)
    response.headers.update(NO_STORE)
    return response
