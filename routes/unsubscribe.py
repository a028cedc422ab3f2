"""``/api/unsubscribe/<token>``: the signed one-click link in messages (no login).

GET shows a confirmation page (mail scanners follow links: a GET changes nothing); POST unsubscribes,
from that page's button or from a mail client's RFC 8058 one-click request
(``List-Unsubscribe=One-Click``). Browsers (``Accept: text/html``) get pages; everyone else JSON.
"""
from html import escape

from flask import Blueprint, Response, request, url_for

from controllers import consent as controller
from security import audit
from errors import ApiError
from routes.endpoint import endpoint
from schemas.import_job import UnsubscribeOut

bp = Blueprint("unsubscribe", __name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 4rem auto">
<h1>{title}</h1><p>{text}</p>{form}</body></html>"""
FORM = '<form method="post" action="{action}"><button type="submit">Unsubscribe</button></form>'


def _wants_html():
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _answer(title, text, unsubscribed, form=""):
    if _wants_html():
        return Response(PAGE.format(title=title, text=text, form=form), content_type="text/html; charset=utf-8")
    return {"unsubscribed": unsubscribed, "message": text}


def _not_ours():
    text = "This unsubscribe link is not valid. Copy the whole link from the message."
    if _wants_html():
        return Response(PAGE.format(title="Link not valid", text=text, form=""), status=404,
                        content_type="text/html; charset=utf-8")
    raise ApiError(404, text)


@bp.get("/<token>")
@endpoint(public=True, response=UnsubscribeOut, errors=(404,),
          description="A page asking to confirm (HTML for browsers, else JSON); nothing changes until it is "
                      "submitted (POST).")
def confirm_page(token):
    """Show the unsubscribe confirmation page."""
    if not controller.valid_token(token):
        return _not_ours()
    action = escape(url_for(".unsubscribe", token=token))
    return _answer("Unsubscribe", "You will no longer receive our campaigns.", False, FORM.format(action=action))


@bp.post("/<token>")
@endpoint(public=True, response=UnsubscribeOut, errors=(404,),
          description="Unsubscribes the customer the link names and suppresses their address; repeating it "
                      "changes nothing. Accepts the RFC 8058 one-click body `List-Unsubscribe=One-Click`.")
def unsubscribe(token):
    """Unsubscribe (the page's button, or a mail client's one-click request)."""
    request.get_data()  # the one-click form body, read and ignored: the link itself is the request
    customer_id = controller.unsubscribe_by_token(token)
    if customer_id is None:
        return _not_ours()
    audit.record("customer.unsubscribe", via="link", target_type="customer", target_id=str(customer_id),
                 details={"oneClick": request.form.get("List-Unsubscribe") == "One-Click"})
    return _answer("Unsubscribed", "You are unsubscribed and will no longer receive our campaigns.", True)
