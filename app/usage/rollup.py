"""The daily roll-up: each plan's metrics per user and UTC day, into ``usage_daily``.

Idempotent: a day is recomputed from its events and its rows replaced, in one transaction, so running it
twice changes nothing. Which days: those of the events ingested since the last run (with a margin, so an
event committed while the last run read is not missed), or a range asked for. Before that, the service
hours of deployments become events (source ``lifetime``) for every finished day.
"""

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, delete, distinct, func, insert, or_, select

from ..extensions import db
from ..models import Aggregation, Metric, UsageCheckpoint, UsageDaily, UsageEvent
from ..models.types import utc_day, utcnow
from .lifetimes import record_lifetimes

CHECKPOINT = "rollup"
MARGIN = timedelta(minutes=10)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def value_of(metric: Metric):
    if metric.aggregation == Aggregation.SUM:
        return func.sum(UsageEvent.quantity)
    if metric.aggregation == Aggregation.MAX:
        return func.max(UsageEvent.quantity)
    if metric.aggregation == Aggregation.DURATION:
        return func.coalesce(func.sum(UsageEvent.duration), 0.0)
    if metric.aggregation == Aggregation.UNIQUE:
        return func.count(distinct(UsageEvent.data[metric.field or "request_uri"].as_string()))
    return func.count()


def events_of(metric: Metric):
    """The events a metric counts: its kind (and action), its plan's or no plan's."""
    conditions = [
        UsageEvent.kind == metric.kind,
        or_(UsageEvent.plan_id.is_(None), UsageEvent.plan_id == metric.plan_id),
    ]
    if metric.action:
        conditions.append(UsageEvent.action == metric.action)
    return and_(*conditions)


def recompute(metric: Metric, first: date, last: date) -> int:
    """Replace the metric's rows for the days first..last with what their events add up to."""
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    db.session.execute(delete(UsageDaily).where(UsageDaily.metric_id == metric.id, UsageDaily.day.in_(days)))
    day = utc_day(UsageEvent.time)
    rows = db.session.execute(
        select(UsageEvent.user_id, day, value_of(metric))
        .where(
            events_of(metric),
            UsageEvent.time >= day_start(first),
            UsageEvent.time < day_start(last + timedelta(days=1)),
        )
        .group_by(UsageEvent.user_id, day)
    ).all()
    values = [
        {
            "user_id": user_id,
            "plan_id": metric.plan_id,
            "metric_id": metric.id,
            "day": name,
            "value": float(value or 0),
        }
        for user_id, name, value in rows
    ]
    if values:
        db.session.execute(insert(UsageDaily), values)
    return len(values)


def changed_days(since: datetime | None, until: datetime) -> tuple[date, date] | None:
    """The first and last day of the events ingested since the last run."""
    query = select(func.min(UsageEvent.time), func.max(UsageEvent.time)).where(UsageEvent.ingested_at <= until)
    if since is not None:
        query = query.where(UsageEvent.ingested_at > since - MARGIN)
    first, last = db.session.execute(query).one()
    if first is None:
        return None
    return first.date(), last.date()


def rollup(start: date | None = None, end: date | None = None, now: datetime | None = None) -> dict:
    """Recompute the days that changed (or start..end); returns what it did, for the run's record."""
    now = now or utcnow()
    lifetimes = record_lifetimes(now)
    db.session.commit()
    checkpoint = db.session.get(UsageCheckpoint, CHECKPOINT)
    if checkpoint is None:
        checkpoint = UsageCheckpoint(name=CHECKPOINT, identity="", offset=0, lines=0)
        db.session.add(checkpoint)
    if start is not None or end is not None:
        span = (start or now.date().replace(day=1), end or now.date())
    else:
        span = changed_days(checkpoint.watermark, now)
    rows = 0
    if span is not None and span[0] <= span[1]:
        for metric in db.session.scalars(select(Metric).order_by(Metric.id)):
            rows += recompute(metric, *span)
    checkpoint.watermark = now
    db.session.commit()
    days = f"{span[0]}..{span[1]}" if span else "none"
    return {"days": days, "rows": rows, "lifetime events": lifetimes}
