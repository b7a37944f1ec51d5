"""Periodic jobs (listed in ``schedule.py``): module-level functions taking primitives, run in an app context."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import ServiceCommand, Status
from ..models.types import utcnow
from ..ops import engine
from .provisioning import enqueue_command, is_waiting


def dispatch_initiated(min_age: float = 2.0, limit: int = 1000) -> int:
    """Enqueue INITIATED commands that are not on a queue (Redis was down, or the enqueue was lost)."""
    cutoff = utcnow() - timedelta(seconds=min_age)
    ids = db.session.scalars(
        select(ServiceCommand.id)
        .where(ServiceCommand.status == Status.INITIATED, ServiceCommand.created_at <= cutoff)
        .order_by(ServiceCommand.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    # a duplicate on the queue would be harmless (the claim lets one run), but it is wasted work
    return sum(1 for command_id in ids if not is_waiting(command_id) and enqueue_command(command_id))


def reap_lost_tasks() -> int:
    """Fail commands and tasks whose worker died (no heartbeat): nothing stays PENDING forever."""
    return engine.reap_lost(current_app.config["LOST_AFTER_SECONDS"])
