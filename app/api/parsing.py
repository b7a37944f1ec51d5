"""Reading requests strictly: bodies, fields and query parameters, each problem a 400 that names it."""

import json

from flask import request

from .errors import ApiError


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def json_body() -> dict:
    """The request's body as a JSON object, or a 400 saying what is wrong with it."""
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: werkzeug answers 413
    if not raw.strip():
        raise bad_request("send a JSON object as the request body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not valid UTF-8") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError, and NaN/Infinity
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request("the request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    if has_nul(body):
        raise bad_request(NUL_MESSAGE)
    return body


NUL_MESSAGE = "text must not contain NUL characters (\\u0000)"


def has_nul(value) -> bool:
    """Whether any string in ``value`` (JSON) holds a NUL, which PostgreSQL refuses to store or compare."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_nul(item) for item in value)
    return False


def reject_nul_in_request() -> None:
    """A NUL in the query or the credentials is a 400, before any query reaches the database."""
    if any(has_nul(key) or has_nul(value) for key, value in request.args.items(multi=True)):
        raise bad_request(f"query parameters: {NUL_MESSAGE}")
    if has_nul(request.headers.get("Authorization", "")):
        raise ApiError(401, "unauthorized", f"Authorization: {NUL_MESSAGE}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def check_fields(body: dict, allowed: set[str], required: set[str] = frozenset(), read_only=frozenset()) -> None:
    """Refuse unknown and read-only fields, then missing ones; every value here must be a string."""
    for field in body:
        if field in read_only:
            raise bad_request(f"field {field!r} is read-only")
        if field not in allowed:
            raise bad_request(f"unknown field {field!r} (allowed: {', '.join(sorted(allowed))})")
    for field in sorted(required):
        if field not in body:
            raise bad_request(f"missing field {field!r}")
    for field, value in body.items():
        if not isinstance(value, str):
            raise bad_request(f"field {field!r} must be a string")


def single_arg(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise bad_request(f"give {name!r} at most once")
    return values[0] if values else None


def int_arg(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = single_arg(name)
    if raw is None:
        return default
    # ASCII digits only ("²".isdigit() is true), and few enough for the database's integers
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not minimum <= int(raw) <= maximum:
        raise bad_request(f"{name!r} must be an integer between {minimum} and {maximum}, got {raw[:20]!r}")
    return int(raw)
