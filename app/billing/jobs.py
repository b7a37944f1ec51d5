"""Billing's periodic jobs (app/jobs/schedule.py) and the invoice run spread over the workers."""

from sqlalchemy import select

from ..extensions import db
from ..jobs.queues import PERIODIC, get_queue
from ..models import User
from ..models.types import utcnow
from .invoices import billable, check_ended, check_identity, previous_period, run_invoices

CHUNK = 500  # users per job: the run spreads over every worker of the periodic queue


def invoice_chunk(period: str, user_ids: list[int]) -> dict:
    """RQ job: the invoices of some users of the period (idempotent like the whole run)."""
    return run_invoices(period, user_ids=user_ids)


def enqueue_invoice_run(period: str, chunk: int = CHUNK) -> int:
    """Split the period's billable users into jobs for the workers; returns how many jobs."""
    check_ended(period, utcnow())
    check_identity()  # production with placeholder billing details: refused here, not in every job
    ids = db.session.scalars(select(User.id).where(billable(period)).order_by(User.id)).all()
    queue = get_queue(PERIODIC)
    jobs = 0
    for start in range(0, len(ids), chunk):
        queue.enqueue(invoice_chunk, period, ids[start : start + chunk], job_timeout=3600, result_ttl=86400)
        jobs += 1
    return jobs


def monthly_invoices() -> dict:
    """On the 1st: invoice the month that just ended, spread over the workers."""
    period = previous_period(utcnow())
    return {"period": period, "jobs": enqueue_invoice_run(period)}
