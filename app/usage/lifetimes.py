"""Service hours: how long each deployment was live on each UTC day, as usage events (source ``lifetime``).

A deployment is live from the end of its first completed install to its removal (``removed_at``), or on.
One event per deployment and finished day (kind ``service``, action ``hours``, quantity in hours), with the
id ``lifetime:<deployment>:<day>``: generating a day again is a no-op. A checkpoint keeps the first day not
generated yet; today is left for tomorrow's run.
"""

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import Phase, ServiceCommand, ServiceDeployment, Source, Status, UsageCheckpoint
from .events import insert_rows

KIND, ACTION = "service", "hours"
CHECKPOINT = "lifetimes"
BATCH = 5000


def start_of(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def installed_since():
    """Each deployment's first completed install: when it became live."""
    return (
        select(ServiceCommand.deployment_id, func.min(ServiceCommand.finished_at).label("since"))
        .where(ServiceCommand.phase == Phase.INSTALL.value, ServiceCommand.status == Status.COMPLETED)
        .group_by(ServiceCommand.deployment_id)
        .subquery()
    )


def day_events(day: date, now: datetime) -> list[dict]:
    """The service-hour events of one finished day."""
    lo_day, hi_day = start_of(day), start_of(day + timedelta(days=1))
    installed = installed_since()
    rows = db.session.execute(
        select(
            ServiceDeployment.id,
            ServiceDeployment.user_id,
            ServiceDeployment.plan_id,
            installed.c.since,
            ServiceDeployment.removed_at,
        )
        .join(installed, installed.c.deployment_id == ServiceDeployment.id)
        .where(
            installed.c.since < hi_day,
            or_(ServiceDeployment.removed_at.is_(None), ServiceDeployment.removed_at > lo_day),
        )
    ).all()
    events = []
    for deployment_id, user_id, plan_id, since, removed_at in rows:
        lo, hi = max(since, lo_day), min(removed_at or hi_day, hi_day)
        if hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        events.append(
            {
                "id": f"lifetime:{deployment_id}:{day.isoformat()}",
                "time": lo_day,
                "end": hi_day,
                "duration": seconds,
                "user_id": user_id,
                "plan_id": plan_id,
                "kind": KIND,
                "action": ACTION,
                "quantity": round(seconds / 3600, 6),
                "source": Source.LIFETIME.value,
                "client_ip": None,
                "data": {"deployment": deployment_id},
                "ingested_at": now,
            }
        )
    return events


def record_lifetimes(now: datetime) -> int:
    """Record the service hours of every finished day since the last run; returns how many events were new."""
    checkpoint = db.session.get(UsageCheckpoint, CHECKPOINT)
    if checkpoint is None:
        checkpoint = UsageCheckpoint(name=CHECKPOINT, identity="", offset=0, lines=0)
        db.session.add(checkpoint)
    first = checkpoint.watermark.date() if checkpoint.watermark else None
    if first is None:
        earliest = db.session.scalar(select(func.min(installed_since().c.since)))
        if earliest is None:
            return 0
        first = earliest.date()
    inserted, day = 0, first
    while day < now.date():
        events = day_events(day, now)
        for start in range(0, len(events), BATCH):
            inserted += len(insert_rows(events[start : start + BATCH]))
        day += timedelta(days=1)
        checkpoint.watermark = start_of(day)
        db.session.commit()
    return inserted
