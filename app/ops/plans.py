"""Removing plans: one that was never used is deleted with its details; one with history is retired, never deleted."""

from sqlalchemy import select

from ..extensions import db
from ..models import ServiceDeployment, ServicePlan
from ..models.integrity import refusing_references
from ..models.status import LIVE_DEPLOYMENT_STATES
from ..models.types import utcnow


class PlanInUse(ValueError):
    """The plan has live deployments and removing it was not forced."""

    def __init__(self, plan: ServicePlan, live: list[ServiceDeployment]):
        listing = ", ".join(f"{d.id} ({d.user.userid}, {d.status.name})" for d in live[:20])
        more = f" and {len(live) - 20} more" if len(live) > 20 else ""
        super().__init__(
            f"service {plan.name!r} has {len(live)} live deployment(s): {listing}{more}; uninstall them first"
        )
        self.live = live


def live_deployments(plan: ServicePlan) -> list[ServiceDeployment]:
    return list(
        db.session.scalars(
            select(ServiceDeployment)
            .where(ServiceDeployment.plan_id == plan.id, ServiceDeployment.status.in_(LIVE_DEPLOYMENT_STATES))
            .order_by(ServiceDeployment.id)
        )
    )


def remove_plan(plan: ServicePlan, force: bool = False) -> tuple[str, list[ServiceDeployment]]:
    """Delete ``plan`` if it was never used, else retire it; returns ("deleted"|"retired", its live deployments).

    Refuses (``PlanInUse``) while deployments are live unless ``force``: they keep running until
    uninstalled, but the plan takes no new ones. The caller commits.
    """
    live = live_deployments(plan)
    if live and not force:
        raise PlanInUse(plan, live)
    # used: history refers to it (deployments, commands, usage, invoice lines), which the database would refuse
    # to delete it under; its configurations, steps and metrics go with a plan that was never used
    if not refusing_references(plan):
        db.session.delete(plan)
        return "deleted", live
    # history is never deleted: a plan that was ever used is retired instead
    if plan.active:
        plan.active, plan.offered, plan.retired_at = False, False, utcnow()
    return "retired", live
