"""The console's dashboard: users, deployments by status and health, recent commands, failures, queues."""

from collections import Counter
from datetime import timedelta

from flask_admin import AdminIndexView, expose
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...models import ServiceCommand, ServiceDeployment, Status, User
from ...models.deployments import Health
from ...models.types import utc_day, utcnow
from ..charts import Bar, columns, hbars
from .base import AdminOnly
from .operations import rq_overview

STATUS_COLOUR = {"COMPLETED": "success", "FAILED": "danger", "PENDING": "info", "INITIATED": "secondary"}
HEALTH_COLOUR = {"healthy": "success", "unhealthy": "danger", "unknown": "secondary"}
DAYS = 14


def count(query) -> int:
    return db.session.scalar(query) or 0


def commands_per_day(now) -> tuple[list[str], dict[str, list[int]]]:
    """Finished commands per UTC day over the last DAYS days, completed and failed (grouped in SQL)."""
    start = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(DAYS)]
    day = utc_day(ServiceCommand.finished_at)
    rows = db.session.execute(
        select(day, ServiceCommand.status, func.count())
        .where(ServiceCommand.finished_at >= start, ServiceCommand.status.in_((Status.COMPLETED, Status.FAILED)))
        .group_by(day, ServiceCommand.status)
    )
    series = {"COMPLETED": [0] * DAYS, "FAILED": [0] * DAYS}
    index = {name: i for i, name in enumerate(days)}
    for name, status, n in rows:
        if name in index:
            series[status.name][index[name]] = n
    return days, series


def revenue_per_month(now, months: int = 12) -> tuple[list[str], list[float], list[float]]:
    """Invoiced (finalized, not void) and paid totals per period over the last ``months`` months, in major units."""
    from ...models import Invoice, InvoiceStatus

    periods = []
    year, month = now.year, now.month
    for _ in range(months):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        periods.append(f"{year:04d}-{month:02d}")
    periods.reverse()
    invoiced, paid = dict.fromkeys(periods, 0.0), dict.fromkeys(periods, 0.0)
    rows = db.session.execute(
        select(Invoice.period, Invoice.status, func.sum(Invoice.total))
        .where(
            Invoice.period >= periods[0], Invoice.status.not_in((InvoiceStatus.DRAFT.value, InvoiceStatus.VOID.value))
        )
        .group_by(Invoice.period, Invoice.status)
    )
    for period, status, total in rows:
        if period in invoiced:
            invoiced[period] += (total or 0) / 100
            if status == InvoiceStatus.PAID:
                paid[period] += (total or 0) / 100
    return periods, [invoiced[p] - paid[p] for p in periods], [paid[p] for p in periods]


class DashboardView(AdminOnly, AdminIndexView):
    @expose("/")
    def index(self):
        now = utcnow()
        # one pass over the (status, health) index for both charts
        by_status, by_health = Counter(), Counter()
        counts = select(ServiceDeployment.status, ServiceDeployment.health, func.count()).group_by(
            ServiceDeployment.status, ServiceDeployment.health
        )
        for status, health, n in db.session.execute(counts):
            by_status[status] += n
            if status != Status.REMOVED:
                by_health[health] += n
        last_day = dict(
            db.session.execute(
                select(ServiceCommand.status, func.count())
                .where(ServiceCommand.created_at >= now - timedelta(hours=24))
                .group_by(ServiceCommand.status)
            ).all()
        )
        failures = db.session.scalars(
            select(ServiceCommand)
            .where(ServiceCommand.status == Status.FAILED)
            .options(joinedload(ServiceCommand.user), joinedload(ServiceCommand.plan))
            .order_by(ServiceCommand.id.desc())
            .limit(10)
        ).all()
        days, series = commands_per_day(now)
        stats = {
            "users": count(select(func.count()).select_from(User)),
            "new_users": count(
                select(func.count()).select_from(User).where(User.created_at >= now - timedelta(days=7))
            ),
            "live": sum(n for status, n in by_status.items() if status != Status.REMOVED),
            "completed_24h": last_day.get(Status.COMPLETED, 0),
            "failed_24h": last_day.get(Status.FAILED, 0),
            # queued or running now, however long ago they were issued (the (status, id) index counts them)
            "running": count(
                select(func.count())
                .select_from(ServiceCommand)
                .where(ServiceCommand.status.in_((Status.INITIATED, Status.PENDING)))
            ),
        }
        charts = {
            "status": hbars(
                [Bar(s.name, by_status.get(s, 0), STATUS_COLOUR.get(s.name, "light")) for s in Status],
                "Deployments by status",
            ),
            "health": hbars(
                [Bar(h.value, by_health.get(h.value, 0), HEALTH_COLOUR[h.value]) for h in Health],
                "Live deployments by health",
            ),
            "commands": columns(
                days,
                [("completed", "success", series["COMPLETED"]), ("failed", "danger", series["FAILED"])],
                f"Commands finished per day, last {DAYS} days",
            ),
        }
        periods, unpaid, paid = revenue_per_month(now)
        charts["revenue"] = columns(
            periods, [("paid", "success", paid), ("not paid", "warning", unpaid)], "Invoiced per month"
        )
        return self.render("admin/index.html", stats=stats, charts=charts, failures=failures, rq=rq_overview())
