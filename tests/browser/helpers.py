"""What journeys do over and over, as a person would do it in the browser; and database checks to back them up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from app.extensions import db
from app.models import ServiceDeployment, ServicePlan, Status, User

from ..factories import PASSWORD
from ..processes import wait_until

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture fails (under CI) or skips with the reason
    expect = None

if TYPE_CHECKING:
    from playwright.sync_api import Page


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Log in through the login form and wait until the page says who is logged in."""
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation").get_by_text(email, exact=True)).to_be_visible()


def wait_for_deployment(email: str, plan: str, status: Status = Status.COMPLETED, timeout: float = 30) -> None:
    """Wait (in the test's app context) until the worker has brought ``email``'s ``plan`` deployment to ``status``."""

    def current():
        db.session.rollback()  # a fresh read: the worker writes from its own process
        return db.session.scalar(
            select(ServiceDeployment.status)
            .join(User, ServiceDeployment.user_id == User.id)
            .join(ServicePlan, ServiceDeployment.plan_id == ServicePlan.id)
            .where(User.email == email, ServicePlan.name == plan)
        )

    wait_until(lambda: current() == status, timeout, message=f"{plan} of {email} {status.name}")
