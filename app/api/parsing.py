"""Reading requests strictly: bodies, fields and query parameters, each problem a 400 that names it."""

import json
import re

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
    except RecursionError:  # json.loads checks its own depth: far beyond MAX_DEPTH, it stops here
        raise bad_request(DEPTH_MESSAGE) from None
    if deeper_than(body, MAX_DEPTH):  # before any code walks it (has_nul, the schemas, deep_merge, the database)
        raise bad_request(DEPTH_MESSAGE)
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    if has_nul(body):
        raise bad_request(NUL_MESSAGE)
    return body


NUL_MESSAGE = "text must not contain NUL characters (\\u0000) or lone surrogates (\\ud800-\\udfff)"
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# objects and lists in one another: no body of this API comes near it (the deepest, a plan's defaults, holds a few
# levels); 500 levels used to overflow the stack in the walks below, a 500 and a 2,000-line traceback in the log
MAX_DEPTH = 64
DEPTH_MESSAGE = f"the request body is nested too deeply: at most {MAX_DEPTH} levels of objects and lists"


def deeper_than(value, limit: int) -> bool:
    """Whether JSON ``value`` holds objects and lists more than ``limit`` levels deep (the top level is 1)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def too_deep(raw: bytes | str) -> bool:
    """Whether JSON text nests more than ``MAX_DEPTH`` levels (text that is no JSON is not: its reader says so),
    for a body read by a library that walks it recursively (the stripe webhook's events)."""
    try:
        return deeper_than(json.loads(raw), MAX_DEPTH)
    except RecursionError:
        return True
    except ValueError:
        return False


def has_nul(value) -> bool:
    """Whether any string in ``value`` (JSON) holds a NUL, which PostgreSQL refuses to store or compare.

    A walk with a list of its own, not recursion: any depth (events read from log files, too) is walked."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or LONE_SURROGATE.search(item):  # JSON may say "\ud800": no database stores it
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
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
