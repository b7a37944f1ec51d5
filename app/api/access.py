"""Who may see what: admins everything, users their own; someone else's object is a 404, as if absent."""

from functools import wraps

from flask import request

from ..extensions import db
from ..models import User
from ..models.types import valid_id
from .auth import require_user
from .errors import ApiError
from .parsing import bad_request

__all__ = ["get_or_404", "guarded", "owned_or_404", "require_admin", "require_reporter", "require_user"]


def require_admin() -> User:
    """The authenticated caller if an admin; 401 when anonymous, 403 otherwise."""
    user = require_user()
    if not user.admin:
        raise ApiError(403, "forbidden", "this needs an admin's API key")
    return user


def require_reporter() -> User:
    """The authenticated caller if an admin or a service account (they report usage); else 401 or 403."""
    user = require_user()
    if not (user.admin or user.service_account):
        raise ApiError(403, "forbidden", "usage events are reported by admins and service accounts")
    return user


def get_or_404(model, ident: int, kind: str):
    obj = db.session.get(model, ident) if valid_id(ident) else None
    if obj is None:
        raise ApiError(404, "not_found", f"no {kind} {ident}")
    return obj


def owned_or_404(model, ident: int, kind: str, caller: User):
    """The object if it is the caller's (its ``user_id``), or the caller is an admin."""
    obj = get_or_404(model, ident, kind)
    if not caller.admin and obj.user_id != caller.id:
        raise ApiError(404, "not_found", f"no {kind} {ident}")
    return obj


def guarded(admin: bool = False, query: bool = False, caller=None, public: bool = False):
    """Check the caller before anything else (a bad body from a stranger is a 401/403, not a 400).

    ``admin``: admins only; ``caller``: another check, e.g. ``require_reporter``; ``public``: anyone (sign-up,
    reset), only the query is checked. ``query``: the view reads query parameters (its schema refuses unknown
    ones); other views refuse any query parameter but ``format=json`` (tastypie clients send it). Place it
    right below ``@bp.route``, above ``@idempotent`` and ``@bp.arguments``.
    """
    check = (lambda: None) if public else caller or (require_admin if admin else require_user)

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            check()
            if not query:
                unknown = sorted(name for name in request.args if name != "format")
                if unknown:
                    raise bad_request(f"unknown query parameter {unknown[0]!r}")
                if request.args.get("format", "json") != "json":
                    raise bad_request("format: Must be one of: json.")
            return view(*args, **kwargs)

        return wrapper

    return decorator
