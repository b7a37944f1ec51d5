"""The landing page: the user's services at a glance."""

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import ServiceDeployment, ServicePlan, Status

bp = Blueprint("main", __name__)


@bp.route("/healthz")
def healthz():
    """Answer that the web process is up (for load balancers; touches nothing)."""
    return {"status": "ok"}


@bp.route("/")
def index():
    """Show the offered plans, and the user's deployments when logged in."""
    plans = db.session.scalars(
        select(ServicePlan)
        .where(ServicePlan.offered.is_(True), ServicePlan.active.is_(True))
        .order_by(ServicePlan.name)
    ).all()
    deployments = []
    if current_user.is_authenticated:
        deployments = db.session.scalars(
            select(ServiceDeployment)
            .where(ServiceDeployment.user_id == current_user.id, ServiceDeployment.status != Status.REMOVED)
            .options(db.joinedload(ServiceDeployment.plan))
            .order_by(ServiceDeployment.id)
        ).all()
    return render_template("main/index.html", plans=plans, deployments=deployments)
