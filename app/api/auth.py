"""Who is calling the API: ``Authorization: ApiKey <userid>:<key>``, or the session for safe requests.

Bad credentials are a 401 with a JSON body, never a 5xx (the omegaml client retries 5xx five
times); repeated bad keys from one address are a 429 with Retry-After.
"""

import time

from flask import current_app, request
from flask_login import current_user
from limits import parse

from ..accounts import authenticate_key
from ..extensions import limiter
from ..models import User
from .errors import ApiError

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": 'ApiKey realm="omegaops"'})


def _failure_limit():
    return parse(current_app.config["APIKEY_FAILURE_LIMIT"])


def _check_failures() -> None:
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    try:
        item = _failure_limit()
        if not limiter.limiter.test(item, "apikey-failure", request.remote_addr or "-"):
            reset, _ = limiter.limiter.get_window_stats(item, "apikey-failure", request.remote_addr or "-")
            retry = max(1, int(reset - time.time()))
            message = "too many bad API keys: try again later"
            raise ApiError(429, "too_many_requests", message, {"Retry-After": str(retry)})
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 -- the limiter's storage is down: authenticate without it
        current_app.logger.warning("rate limit storage unavailable for API key failures")


def _record_failure() -> None:
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    try:
        limiter.limiter.hit(_failure_limit(), "apikey-failure", request.remote_addr or "-")
    except Exception:  # noqa: BLE001 -- as above
        current_app.logger.warning("rate limit storage unavailable: an API key failure was not counted")


def authenticate() -> User | None:
    """The caller, or None when anonymous; bad credentials raise a 401."""
    # per request, not on `g`: an app context (and its g) may outlive one request
    if "omegaops.api_user" in request.environ:
        return request.environ["omegaops.api_user"]
    header = request.headers.get("Authorization", "").strip()
    user = None
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "apikey":
            userid, sep, key = credentials.strip().partition(":")
            user = authenticate_key(userid, key) if sep else None
            if user is None:
                # only failures touch the limiter: a good key costs no Redis round trip, and a
                # 160-bit key is not guessed; the limit keeps floods of bad keys off the database
                _check_failures()
                _record_failure()
                raise _unauthorized("invalid API key or user")
        elif scheme.lower() == "bearer":
            raise _unauthorized("this service issues API keys: send Authorization: ApiKey <userid>:<key>")
        else:
            raise _unauthorized(f"unsupported authorization scheme {scheme!r}: use ApiKey <userid>:<key>")
    elif current_user.is_authenticated and request.method in SAFE_METHODS:
        user = current_user._get_current_object()
    request.environ["omegaops.api_user"] = user
    return user


def require_user() -> User:
    """The authenticated caller, or a 401."""
    user = authenticate()
    if user is None:
        raise _unauthorized("authentication required: Authorization: ApiKey <userid>:<key>")
    return user


def uses_apikey() -> bool:
    """Whether this request was authenticated with the ApiKey scheme (the omegaml client's)."""
    return request.headers.get("Authorization", "").strip().lower().startswith("apikey ")
