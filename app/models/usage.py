"""Usage: events recorded once each (their id is the idempotency key), per-plan metrics over them, and the
daily roll-up that pages and invoices read."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .services import JSONType, ServicePlan
from .types import UTCDateTime, utcnow
from .users import User


class Source(StrEnum):
    API = "api"  # the request log of /api/... (app/usage/middleware.py)
    LOG = "log"  # service log files (`flask ingestusage`)
    BATCH = "batch"  # POST /admin/api/v2/usage/event
    LIFETIME = "lifetime"  # service hours of deployments, from their commands


class Aggregation(StrEnum):
    COUNT = "count"  # how many events
    SUM = "sum"  # the sum of their quantities
    MAX = "max"  # the largest quantity of the day
    UNIQUE = "unique"  # how many distinct values of data[field]
    DURATION = "duration"  # the sum of end - start, in seconds


class UsageEvent(db.Model):
    """One billable use. Inserting an id that exists is a no-op: the unique key decides, at write time."""

    __tablename__ = "usage_events"
    # events arrive roughly in time order: block-range (BRIN) indexes on PostgreSQL cost little per insert
    __table_args__ = (
        Index("ix_usage_events_time", "time", postgresql_using="brin"),
        Index("ix_usage_events_user_time", "user_id", "time"),
        Index("ix_usage_events_ingested_at", "ingested_at", postgresql_using="brin"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime)  # start_dt
    end: Mapped[datetime | None] = mapped_column(UTCDateTime)  # end_dt
    duration: Mapped[float | None] = mapped_column(Float)  # seconds, end - start
    # usage is history (it is billed): a user or plan with events cannot be deleted
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("service_plans.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[float] = mapped_column(Float, default=1.0)
    source: Mapped[str] = mapped_column(String(10))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    # when it reached us: the roll-up recomputes the days of events ingested since its last run
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    plan: Mapped[ServicePlan | None] = relationship()

    def __repr__(self):
        return f"<UsageEvent {self.id} {self.kind}/{self.action}>"


class Metric(db.Model):
    """What a plan measures: which events (kind, action), how they add up per day, in which unit."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("plan_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # part of its plan: deleted with a never-used one (a billed metric refuses it: InvoiceLine.metric_id)
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(50))
    action: Mapped[str | None] = mapped_column(String(100))  # None: any action of the kind
    aggregation: Mapped[str] = mapped_column(String(10), default=Aggregation.COUNT.value)
    field: Mapped[str | None] = mapped_column(String(100))  # for unique: the data key counted
    unit: Mapped[str] = mapped_column(String(20), default="")
    # pricing (billing): minor units per unit as exact decimal text, units free each month, graduated tiers
    unit_price: Mapped[str] = mapped_column(String(40), default="0", server_default="0")
    included: Mapped[str] = mapped_column(String(40), default="0", server_default="0")
    tiers: Mapped[list] = mapped_column(JSONType, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    plan: Mapped[ServicePlan] = relationship()

    def __repr__(self):
        return f"<Metric {self.name} of plan {self.plan_id}>"

    def __str__(self):
        return self.name


class UsageDaily(db.Model):
    """A metric's value for one user on one UTC day: the roll-up rewrites the days it recomputes."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        UniqueConstraint("user_id", "metric_id", "day"),
        Index("ix_usage_daily_day_metric", "day", "metric_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    # recomputed from the events (which stay): the rows go with their metric, and with the metric's plan
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="CASCADE"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id", ondelete="CASCADE"), index=True)
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, UTC
    value: Mapped[float] = mapped_column(Float)

    metric: Mapped[Metric] = relationship()
    user: Mapped[User] = relationship()


class UsageCheckpoint(db.Model):
    """How far a source was read: a log file's identity and offset, the roll-up's watermark."""

    __tablename__ = "usage_checkpoints"

    name: Mapped[str] = mapped_column(String(500), primary_key=True)  # the file's path, or "rollup"
    identity: Mapped[str] = mapped_column(String(200), default="")  # device:inode and a hash of the first line
    offset: Mapped[int] = mapped_column(default=0)  # bytes read (complete lines only)
    lines: Mapped[int] = mapped_column(default=0)  # lines read, for the line numbers of malformed lines
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
