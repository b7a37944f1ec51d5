"""The admin console (Flask-Admin, Bootstrap 4): admins only."""

from flask import Flask, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters as model_filters
from flask_admin.theme import Bootstrap4Theme
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from ..extensions import db
from ..models import ServiceCommand, ServiceConfiguration, ServiceDeployment, ServicePlan, ServiceTask, Status, User
from ..security import csp_nonce


def _deny():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return redirect(url_for("main.index"))


class AdminOnly:
    """Checks *admin*, not just logged in; anonymous visitors are sent to the login page."""

    def is_accessible(self):
        return current_user.is_authenticated and current_user.admin

    def inaccessible_callback(self, name, **kwargs):
        return _deny()


class SecureIndexView(AdminOnly, AdminIndexView):
    @expose("/")
    def index(self):
        by_status = dict(
            db.session.execute(select(ServiceDeployment.status, func.count()).group_by(ServiceDeployment.status)).all()
        )
        counts = {
            "users": db.session.scalar(select(func.count()).select_from(User)),
            "plans": db.session.scalar(select(func.count()).select_from(ServicePlan)),
            "deployments": {status.name: by_status.get(status, 0) for status in Status},
            "commands": db.session.scalar(select(func.count()).select_from(ServiceCommand)),
        }
        return self.render("admin/index.html", counts=counts)


class FilterConverter(sqla_filters.FilterConverter):
    """Filters for our own column types: UTC timestamps and integer status enums."""

    @model_filters.convert("UTCDateTime")
    def conv_utc_datetime(self, column, name, **kwargs):
        return self.conv_datetime(column, name, **kwargs)

    @model_filters.convert("IntEnumType")
    def conv_int_enum(self, column, name, **kwargs):
        options = [(str(int(member)), member.name) for member in column.type.enum_class]
        return [
            sqla_filters.IntEqualFilter(column, name, options=options),
            sqla_filters.IntNotEqualFilter(column, name, options=options),
        ]


class SecureModelView(AdminOnly, ModelView):
    # Flask-WTF's global CSRFProtect checks every POST: its form class carries the token (not SecureForm)
    form_base_class = FlaskForm
    filter_converter = FilterConverter()
    page_size = 50
    can_view_details = True


class ReadOnlyModelView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False


class UserView(SecureModelView):
    can_delete = False
    column_list = ("userid", "email", "first_name", "last_name", "active", "admin", "created_at")
    column_searchable_list = ("email", "userid", "last_name")
    column_filters = ("active", "admin", "created_at")
    column_exclude_list = ("password_hash",)
    column_details_exclude_list = ("password_hash",)
    form_excluded_columns = ("password_hash", "api_keys", "created_at")


class PlanView(SecureModelView):
    can_delete = False  # plans are retired (`flask deleteservice --force`), never deleted with their history
    column_list = ("name", "title", "offered", "one_per_user", "active", "updated_at")
    column_searchable_list = ("name", "title")
    form_excluded_columns = ("configurations", "created_at", "updated_at")


class DeploymentView(ReadOnlyModelView):
    column_list = ("id", "user", "plan", "status", "health", "created_at", "updated_at")
    column_filters = ("status", "health", "plan.name", "user.email", "created_at")
    column_default_sort = ("id", True)


class CommandView(ReadOnlyModelView):
    column_list = ("id", "user", "plan", "phase", "status", "failure_reason", "created_at", "finished_at")
    column_filters = ("status", "phase", "plan.name", "user.email", "created_at")
    column_default_sort = ("id", True)


class TaskView(ReadOnlyModelView):
    column_list = ("id", "command_id", "position", "name", "status", "exit_code", "started_at", "finished_at")
    column_filters = ("status", "command_id")
    column_default_sort = ("id", True)


def init_admin(app: Flask) -> Admin:
    """A new Admin per app, so tests can build as many apps as they like."""
    admin = Admin(
        app,
        name="omegaops",
        theme=Bootstrap4Theme(),
        index_view=SecureIndexView(url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(UserView(User, db, name="Users"))
    admin.add_view(PlanView(ServicePlan, db, name="Plans", category="Services"))
    admin.add_view(ReadOnlyModelView(ServiceConfiguration, db, name="Configurations", category="Services"))
    admin.add_view(DeploymentView(ServiceDeployment, db, name="Deployments", category="Services"))
    admin.add_view(CommandView(ServiceCommand, db, name="Commands", category="Services"))
    admin.add_view(TaskView(ServiceTask, db, name="Tasks", category="Services"))
    return admin
