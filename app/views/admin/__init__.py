"""The admin console (Flask-Admin 2, Bootstrap 4): admins only."""

from flask import Flask, current_app
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from ...billing.identity import placeholder_warnings
from ...extensions import db
from ...models import (
    Invoice,
    Metric,
    Payment,
    PeriodicRun,
    ServiceCommand,
    ServiceConfiguration,
    ServiceDeployment,
    ServicePlan,
    ServiceTask,
    UsageDaily,
    UsageEvent,
    User,
)
from ...security import csp_nonce
from .billing import InvoiceView, PaymentView
from .dashboard import DashboardView
from .operations import OperationsView
from .plans import ConfigurationView, PlanView
from .runs import CommandView, DeploymentView, TaskView
from .usage import MetricView, PeriodicRunView, UsageDailyView, UsageEventView
from .users import UserView


def init_admin(app: Flask) -> Admin:
    """A new Admin per app, so tests can build as many apps as they like."""
    admin = Admin(
        app,
        name="omegaops",
        theme=Bootstrap4Theme(base_template="admin/console_base.html"),
        index_view=DashboardView(url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(UserView(User, db, name="Users"))
    admin.add_view(PlanView(ServicePlan, db, name="Plans", category="Services"))
    admin.add_view(ConfigurationView(ServiceConfiguration, db, name="Configurations", category="Services"))
    admin.add_view(DeploymentView(ServiceDeployment, db, name="Deployments", category="Services"))
    admin.add_view(CommandView(ServiceCommand, db, name="Commands", category="Services"))
    admin.add_view(TaskView(ServiceTask, db, name="Tasks", category="Services"))
    admin.add_view(MetricView(Metric, db, name="Metrics", category="Usage"))
    admin.add_view(UsageEventView(UsageEvent, db, name="Events", category="Usage"))
    admin.add_view(UsageDailyView(UsageDaily, db, name="Daily usage", category="Usage"))
    admin.add_view(InvoiceView(Invoice, db, name="Invoices", category="Billing"))
    admin.add_view(PaymentView(Payment, db, name="Payments", category="Billing"))
    admin.add_view(OperationsView(name="Operations", endpoint="operations", url="/admin/operations"))
    admin.add_view(PeriodicRunView(PeriodicRun, db, name="Periodic runs"))

    @app.context_processor
    def console_context():
        return {"console_warnings": console_warnings}

    return admin


def console_warnings() -> list[str]:
    """What an operator must fix, shown on every console page (e.g. the invoices' placeholder company)."""
    return placeholder_warnings(current_app.config)
