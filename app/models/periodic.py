"""Runs of the periodic jobs, as the scheduler's workers ran them: when, how it ended, a short detail."""

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime, utcnow


class PeriodicRun(db.Model):
    __tablename__ = "periodic_runs"
    __table_args__ = (Index("ix_periodic_runs_job_id", "job", "id"),)

    RUNNING, OK, FAILED = "running", "ok", "failed"

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(200))  # the function's dotted path, as in app/jobs/schedule.py
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(10), default=RUNNING)
    detail: Mapped[str] = mapped_column(Text, default="")  # what it did, or why it failed (one line or a few)

    def __repr__(self):
        return f"<PeriodicRun {self.job} {self.outcome}>"
