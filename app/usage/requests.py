"""The API's request log as usage events: every authenticated request to ``/api/...`` (and the service API)
becomes an event in the original events format, pushed onto a Redis list -- one RPUSH, no database write
on the request's path -- and ``drain_request_log`` (a periodic job) records them in batches.

Each event carries its own id, so a batch drained twice (a crash between the insert and the trim) counts once.
"""

import json
import logging
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, current_app, request
from redis.exceptions import RedisError

from ..extensions import db
from ..jobs.queues import get_redis
from ..models import Source
from .events import record

log = logging.getLogger(__name__)
KEY = "omegaops:usage:requests"
PREFIXES = ("/api/", "/admin/api/v2/service/")
BATCH = 5000


def request_event(response) -> dict | None:
    """The event of this request, if it is an authenticated API request."""
    user = request.environ.get("omegaops.api_user")
    started = request.environ.get("omegaops.started")
    if user is None or started is None or not request.path.startswith(PREFIXES):
        return None
    start_wall, start_clock = started
    end = start_wall + (time.perf_counter() - start_clock)
    return {
        "id": f"api:{uuid.uuid4().hex}",
        "start_dt": datetime.fromtimestamp(start_wall, UTC).isoformat(),
        "end_dt": datetime.fromtimestamp(end, UTC).isoformat(),
        "user": user.userid,
        "kind": "api",
        "client_ip": (request.remote_addr or "")[:64] or None,
        "action": "request",
        "data": {
            "request_uri": request.full_path.rstrip("?")[:500],
            "request_method": request.method,
            "request_resource_name": request.endpoint or "",
            "status": response.status_code,
        },
    }


def init_request_log(app: Flask) -> None:
    @app.before_request
    def note_start():
        request.environ["omegaops.started"] = (time.time(), time.perf_counter())

    @app.after_request
    def log_request(response):
        event = request_event(response)
        if event is not None:
            try:
                get_redis().rpush(KEY, json.dumps(event))
            except RedisError as exc:  # usage is lost rather than the request failed
                log.warning("request log: event not recorded, Redis is unreachable (%s)", exc)
        return response


def drain_request_log(batch: int = BATCH, rounds: int = 100) -> dict:
    """Record the request log's events (periodic): a batch at a time, trimmed once committed."""
    connection = get_redis()
    recorded = duplicates = rejected = 0
    for _ in range(rounds):
        raw = connection.lrange(KEY, 0, batch - 1)
        if not raw:
            break
        events = []
        for item in raw:
            try:
                events.append(json.loads(item))
            except ValueError:
                rejected += 1
        outcome = record(events, Source.API.value)
        db.session.commit()
        connection.ltrim(KEY, len(raw), -1)
        recorded += outcome.count("accepted")
        duplicates += outcome.count("duplicate")
        rejected += outcome.count("rejected")
        if len(raw) < batch:
            break
    if rejected:
        current_app.logger.warning("request log: %s events rejected", rejected)
    return {"recorded": recorded, "duplicates": duplicates, "rejected": rejected}
