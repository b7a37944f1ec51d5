"""The landing page: the catalog for visitors; logged-in users go to their services."""

from flask import Blueprint, current_app, redirect, render_template, send_from_directory, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import ServicePlan

bp = Blueprint("main", __name__)


@bp.route("/healthz")
def healthz():
    """Answer that the web process is up (for load balancers; touches nothing)."""
    return {"status": "ok"}


@bp.route("/favicon.ico")
def favicon():
    """The site's icon (browsers ask for it on every page)."""
    response = send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)
    return response


@bp.route("/")
def index():
    """Show the offered plans; logged-in users go to their services."""
    if current_user.is_authenticated:
        return redirect(url_for("services.index"))
    plans = db.session.scalars(
        select(ServicePlan)
        .where(ServicePlan.offered.is_(True), ServicePlan.active.is_(True))
        .order_by(ServicePlan.name)
    ).all()
    return render_template("main/index.html", plans=plans)
