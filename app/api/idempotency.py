"""``Idempotency-Key`` on POSTs: a retried request gets the first answer, a reused key with another request a 409.

Keys are per user. The first successful (2xx) answer is stored with a fingerprint of the request
(method, path, body; a JSON body is compared by content, not by its spacing or key order); a repeat
with the same fingerprint replays it (``Idempotent-Replayed: true``), another request under the same
key is a 409 ``idempotency_key_reused``. Errors are not stored: a request that failed may be retried
with the same key. Commands carry the key in their own unique column too, so two racing first
requests still make one command (see ``app.api.commands``).
"""

import hashlib
import json
import re
from functools import wraps

from flask import Response, current_app, make_response, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import IdempotencyKey
from .auth import require_user
from .errors import ApiError
from .parsing import bad_request

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as the column holds it
HEADER_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Retry-safe POST: the same key and body answer the first result again; "
    "the same key with another body is a 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"},
}


def request_key() -> str | None:
    """The request's idempotency key, validated; None when it sends none."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not KEY_RE.match(key):
        raise bad_request(f"header {HEADER} must be 1 to 200 visible ASCII characters")
    return key


def fingerprint() -> str:
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        body = raw
    path = request.path.rstrip("/").encode()  # `command` and `command/` are the same resource
    return hashlib.sha256(b"\0".join([request.method.encode(), path, body])).hexdigest()


def idempotent(view):
    """Make a POST view answer repeats of the same ``Idempotency-Key`` with its first answer."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request_key()
        if key is None:
            return view(*args, **kwargs)
        user = require_user()
        digest = fingerprint()
        stored = db.session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user.id, IdempotencyKey.key == key)
        )
        if stored is not None:
            return replay(stored, digest)
        response = make_response(view(*args, **kwargs))
        if 200 <= response.status_code < 300:
            remember(user.id, key, digest, response)
        return response

    return wrapper


def replay(stored: IdempotencyKey, digest: str) -> Response:
    if stored.request_sha256 != digest:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"{HEADER} {stored.key!r} was used for another request: send a new key for a new request",
        )
    response = current_app.response_class(stored.response_body, stored.status_code, mimetype="application/json")
    if stored.location:
        response.headers["Location"] = stored.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def remember(user_id: int, key: str, digest: str, response: Response) -> None:
    db.session.add(
        IdempotencyKey(
            user_id=user_id,
            key=key,
            request_sha256=digest,
            status_code=response.status_code,
            response_body=response.get_data(as_text=True),
            location=response.headers.get("Location"),
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        # a concurrent request with the same key stored its answer first: both did the same thing
        db.session.rollback()
