"""``POST /admin/api/v2/usage/event``: usage events in batches, from admins and service accounts.

Body: ``{"events": [event, ...]}`` (1 to 10,000 events in the format of ``app/usage/events.py``).
Answer 200: counts and one result per event, in order -- ``accepted``, ``duplicate`` (its id was recorded
before, or earlier in the batch) or ``rejected`` with the reason. A batch is recorded in one transaction;
sending it again answers ``duplicate`` for what was accepted.
"""

from flask import Blueprint

from ..extensions import db
from ..models import Source
from ..usage.events import record
from .access import require_user
from .errors import ApiError
from .parsing import bad_request, json_body

bp = Blueprint("api_usage", __name__, url_prefix="/admin/api/v2/usage")
MAX_EVENTS = 10_000


@bp.route("/event/", methods=["POST"], strict_slashes=False)
def event_batch():
    caller = require_user()
    if not (caller.admin or caller.service_account):
        raise ApiError(403, "forbidden", "usage events are reported by admins and service accounts")
    body = json_body()
    unknown = sorted(set(body) - {"events"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} (allowed: events)")
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise bad_request(f"events: a list of 1 to {MAX_EVENTS} events")
    outcome = record(events, Source.BATCH.value)
    db.session.commit()
    return {
        "accepted": outcome.count("accepted"),
        "duplicates": outcome.count("duplicate"),
        "rejected": outcome.count("rejected"),
        "results": outcome.results,
    }
