"""Periodic jobs (listed in ``schedule.py``): module-level functions taking primitives, run in an app context."""

from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

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


def health_checks(limit: int = 10_000) -> dict:
    """Issue a ``check`` command for each live deployment whose configuration has check steps.

    Its outcome becomes the deployment's health (the engine sets healthy / unhealthy). Deployments
    with a command in flight are left for the next round.
    """
    from ..models import ServiceConfiguration, ServiceDeployment
    from ..ops.commands import CommandRefused, issue_command

    deployments = db.session.scalars(
        select(ServiceDeployment)
        .where(ServiceDeployment.status == Status.COMPLETED)
        .options(joinedload(ServiceDeployment.configuration).selectinload(ServiceConfiguration.steps))
        .order_by(ServiceDeployment.checked_at.is_not(None), ServiceDeployment.checked_at, ServiceDeployment.id)
        .limit(limit)
    ).all()
    issued, busy = [], 0
    for deployment in deployments:
        if not deployment.configuration.steps_for("check"):
            continue
        try:
            command = issue_command(
                plan=deployment.plan,
                user=deployment.user,
                phase="check",
                deployment_id=deployment.id,
                privileged=True,
            )
        except CommandRefused:
            db.session.rollback()
            busy += 1
            continue
        db.session.commit()
        issued.append(command.id)
    for command_id in issued:
        enqueue_command(command_id)
    return {"checks issued": len(issued), "busy": busy}
