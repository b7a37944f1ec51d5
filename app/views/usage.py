"""``/usage``: the user's usage this month, per metric (daily bars and the total so far); admins also see
the top users of each metric."""

from datetime import date, timedelta

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from ..extensions import db
from ..models import Metric, UsageDaily, User
from ..models.types import utcnow
from .charts import columns

bp = Blueprint("usage", __name__)
TOP = 10


def month_of(value: str | None) -> date:
    """The first day of ``?month=YYYY-MM``, or of this month."""
    today = utcnow().date()
    if value:
        try:
            year, month = (int(part) for part in value.split("-"))
            return date(year, month, 1)
        except ValueError:
            pass
    return today.replace(day=1)


def days_of(first: date) -> list[str]:
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [(first + timedelta(days=i)).isoformat() for i in range((following - first).days)]


@bp.route("/usage")
@login_required
def index():
    """Per metric: daily bars for the month and its total so far; for admins, the top users of each metric."""
    first = month_of(request.args.get("month"))
    days = days_of(first)
    rows = db.session.execute(
        select(UsageDaily.metric_id, UsageDaily.day, UsageDaily.value).where(
            UsageDaily.user_id == current_user.id, UsageDaily.day >= days[0], UsageDaily.day <= days[-1]
        )
    ).all()
    by_metric: dict[int, dict[str, float]] = {}
    for metric_id, day, value in rows:
        by_metric.setdefault(metric_id, {})[day] = value
    metrics = db.session.scalars(
        select(Metric)
        .where(Metric.id.in_(by_metric))
        .options(joinedload(Metric.plan))
        .order_by(Metric.plan_id, Metric.name)
    ).all()
    panels = []
    for metric in metrics:
        values = [by_metric[metric.id].get(day, 0.0) for day in days]
        panels.append(
            {
                "metric": metric,
                "total": sum(values) if metric.aggregation != "max" else max(values),
                "chart": columns(days, [(metric.name, "primary", values)], f"{metric.name} per day"),
            }
        )
    top = []
    if current_user.admin:
        for metric in db.session.scalars(
            select(Metric).options(joinedload(Metric.plan)).order_by(Metric.plan_id, Metric.name)
        ):
            total = func.max(UsageDaily.value) if metric.aggregation == "max" else func.sum(UsageDaily.value)
            leaders = db.session.execute(
                select(User.email, total.label("total"))
                .join(User, User.id == UsageDaily.user_id)
                .where(UsageDaily.metric_id == metric.id, UsageDaily.day >= days[0], UsageDaily.day <= days[-1])
                .group_by(User.email)
                .order_by(total.desc())
                .limit(TOP)
            ).all()
            top.append({"metric": metric, "leaders": leaders})
    previous = (first - timedelta(days=1)).replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return render_template(
        "usage/index.html", first=first, panels=panels, top=top, previous=previous, following=following
    )
