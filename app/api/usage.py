"""``POST /admin/api/v2/usage/event``: usage events in batches, from admins and service accounts.

Body: ``{"events": [event, ...]}`` (1 to 10,000 events in the format of ``app/usage/events.py``).
Answer 200: counts and one result per event, in order -- ``accepted``, ``duplicate`` (its id was recorded
before, or earlier in the batch) or ``rejected`` with the reason. A batch is recorded in one transaction;
sending it again answers ``duplicate`` for what was accepted.
"""

from flask import jsonify

from ..extensions import db
from ..models import Source
from ..usage.events import record
from . import schemas
from .access import guarded, require_reporter
from .rest import Blueprint

bp = Blueprint(
    "api_usage",
    __name__,
    url_prefix="/admin/api/v2/usage",
    description="Usage events, reported in batches by admins and service accounts.",
)
MAX_EVENTS = schemas.MAX_EVENTS


@bp.route("/event/", methods=["POST"], strict_slashes=False)
@guarded(caller=require_reporter)
@bp.arguments(schemas.UsageBatchArgs)
@bp.response(200, schemas.UsageBatchSchema, description="one result per event, in order")
def event_batch(body):
    """Record a batch of usage events: each accepted, a duplicate (recorded before) or rejected (why)."""
    outcome = record(body["events"], Source.BATCH.value)
    db.session.commit()
    # as the schema says, without dumping 10,000 results through it
    return jsonify(
        accepted=outcome.count("accepted"),
        duplicates=outcome.count("duplicate"),
        rejected=outcome.count("rejected"),
        results=outcome.results,
    )
