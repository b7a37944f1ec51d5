"""Billing's periodic jobs (app/jobs/schedule.py)."""

from ..models.types import utcnow
from .invoices import previous_period, run_invoices


def monthly_invoices() -> dict:
    """On the 1st: invoice the month that just ended."""
    return run_invoices(previous_period(utcnow()))
