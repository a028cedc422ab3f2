"""``Idempotency-Key`` on the POSTs that create something (as Stripe's API does).

The first request with a key runs and, when it succeeds (2xx), its status, body and ``Location`` are
kept for 24 hours (a TTL index). A repeat with the same key and the same request gets that response
again, marked ``Idempotent-Replayed: true``, and writes nothing; the same key with another method,
path or body is a 409, and so is a repeat while the first is still running. A request that fails
(4xx/5xx) keeps nothing, so it can be corrected and sent again with the same key. Keys belong to
the caller: each API key has its own, a signed-in user theirs. A secret shown once (a new API key)
is never kept: its replay has the record without it.
"""
import functools
import hashlib
import json
import re
from datetime import timedelta

from flask import Response, g, make_response, request
from flask_login import current_user
from mongoengine.errors import NotUniqueError

from errors import ApiError
from schemas.common import IDEMPOTENCY_KEY_PATTERN
from models import IdempotentResponse
from models.base import utcnow

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
STALE_AFTER = timedelta(minutes=2)  # a first request this old that never finished (its process died)
KEPT_HEADERS = ("Location", "Content-Type")
CHUNK = 1 << 16


def _owner():
    if g.get("auth_via") == "api_key":
        return f"key:{g.get('api_key_id') or 'development'}"
    if current_user.is_authenticated:
        return f"user:{current_user.get_id()}"
    return "anonymous"


def _fingerprint():
    """A digest of the request: method, path, query, and the body (uploaded files read in chunks)."""
    digest = hashlib.sha256(f"{request.method} {request.full_path}\n".encode())
    if request.mimetype == "multipart/form-data":
        for name, value in sorted(request.form.items(multi=True)):
            digest.update(f"{name}={value}\n".encode())
        for name, upload in sorted(request.files.items(multi=True), key=lambda pair: pair[0]):
            digest.update(f"{name}:{upload.filename}\n".encode())
            while chunk := upload.stream.read(CHUNK):
                digest.update(chunk)
            upload.stream.seek(0)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _key():
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not _KEY.match(key):
        raise ApiError.validation(
            {HEADER: [f"Must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."]}, f"Invalid {HEADER}")
    return key


def _kept_body(response, redact):
    if not redact or not response.is_json:
        return response.get_data(as_text=True)
    body = response.get_json()
    return json.dumps({**body, **{name: None for name in redact if name in body}})


def _replay(record):
    response = Response(record.body, status=record.status, headers=record.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _claim(record_id, fingerprint):
    """Start the first request with this key; None when it is ours to run, else the answer."""
    for _ in range(2):
        try:
            IdempotentResponse(id=record_id, fingerprint=fingerprint).save(force_insert=True)
            return None
        except NotUniqueError:
            record = IdempotentResponse.objects(pk=record_id).first()
        if record is None:  # expired in between: try again
            continue
        if record.fingerprint != fingerprint:
            raise ApiError.conflict(f"This {HEADER} was used for a different request",
                                    {HEADER: ["Already used with another body or path."]})
        if record.status is not None:
            return _replay(record)
        if record.created_at > utcnow() - STALE_AFTER:
            error = ApiError.conflict(f"A request with this {HEADER} is still being processed")
            error.headers = {"Retry-After": "1"}
            raise error
        IdempotentResponse.objects(pk=record_id, status=None, created_at=record.created_at).delete()
    raise ApiError.conflict(f"A request with this {HEADER} is still being processed")


def idempotent(view=None, *, redact=()):
    """Honour ``Idempotency-Key`` on ``view`` (a create). Top-level JSON fields named in ``redact``
    (secrets shown once, such as a new API key) are not kept: a replay answers them as null."""
    if view is None:
        return functools.partial(idempotent, redact=redact)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = _key()
        if key is None:
            return view(*args, **kwargs)
        record_id = hashlib.sha256(f"{_owner()}\0{key}".encode()).hexdigest()
        answer = _claim(record_id, _fingerprint())
        if answer is not None:
            return answer
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            IdempotentResponse.objects(pk=record_id, status=None).delete()
            raise
        if 200 <= response.status_code < 300 and not response.is_streamed:
            headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
            IdempotentResponse.objects(pk=record_id).update_one(
                set__status=response.status_code, set__body=_kept_body(response, redact), set__headers=headers)
        else:
            IdempotentResponse.objects(pk=record_id, status=None).delete()
        return response

    return wrapper
