"""What every console view shares: admins only, CSRF on every form, filters for our column types."""

import json
from datetime import UTC, datetime

from flask import abort, flash, redirect, request, url_for
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters as model_filters
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import Integer
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...models.status import Status
from ...models.types import valid_id
from ...ops.commands import CommandRefused
from ...ops.runner import masked_params


def _deny():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    abort(
        403,
        f"The console is for administrators, and {current_user.email} is not one. "
        "An administrator can make you one (Users → Grant admin) if you need it.",
    )


class AdminOnly:
    """Checks *admin*, not just logged in; anonymous visitors are sent to the login page."""

    def is_accessible(self):
        return current_user.is_authenticated and current_user.admin

    def inaccessible_callback(self, name, **kwargs):
        return _deny()


class ConfirmForm(FlaskForm):
    """Only the CSRF token: for buttons that take no input."""


class ModelForm(FlaskForm):
    """The console's model forms: Flask-WTF's CSRF token (the global CSRFProtect checks it), and the edited
    object kept as ``_obj``, as Flask-Admin's own BaseForm does: its ``Unique`` validator reads it to let a
    record keep its own value (without it, no record with a unique field could be saved)."""

    def __init__(self, formdata=None, obj=None, prefix="", **kwargs):
        self._obj = obj
        super().__init__(formdata=formdata, obj=obj, prefix=prefix, **kwargs)


def _utc(value):
    """A filter's datetime (or pair of them), read as UTC: the times the console shows and the columns hold."""
    if isinstance(value, list):
        return [_utc(moment) for moment in value]
    return value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value


def _utc_filter(base):
    """``base`` (one of Flask-Admin's datetime filters) taking the operator's value as a UTC time.

    Flask-Admin parses it naive, and a UTC column refuses naive datetimes (``app.models.types``): a 500 before.
    """

    class UTCFilter(base):
        def clean(self, value):
            return _utc(super().clean(value))

    UTCFilter.__name__ = UTCFilter.__qualname__ = f"UTC{base.__name__}"
    return UTCFilter


class FilterConverter(sqla_filters.FilterConverter):
    """Filters for our own column types: UTC timestamps and integer status enums."""

    utc_datetime_filters: tuple = ()  # filled below, from Flask-Admin's own list

    @model_filters.convert("UTCDateTime")
    def conv_utc_datetime(self, column, name, **kwargs):
        return [f(column, name, **kwargs) for f in self.utc_datetime_filters]

    @model_filters.convert("IntEnumType")
    def conv_int_enum(self, column, name, **kwargs):
        options = [(str(int(member)), member.name) for member in column.type.enum_class]
        return [
            sqla_filters.IntEqualFilter(column, name, options=options),
            sqla_filters.IntNotEqualFilter(column, name, options=options),
        ]


FilterConverter.utc_datetime_filters = tuple(_utc_filter(f) for f in sqla_filters.FilterConverter.datetime_filters)


def status_formatter(view, context, model, name):
    status = getattr(model, name)
    css = {Status.COMPLETED: "success", Status.FAILED: "danger", Status.PENDING: "info"}.get(status, "secondary")
    return Markup('<span class="badge badge-{}">{}</span>').format(css, status.name)


def health_formatter(view, context, model, name):
    health = getattr(model, name)
    css = {"healthy": "success", "unhealthy": "danger"}.get(health, "secondary")
    return Markup('<span class="badge badge-{}">{}</span>').format(css, health)


def masked_formatter(view, context, model, name):
    """A JSON column (settings, params, env) as JSON, its secrets masked."""
    value = masked_params(getattr(model, name) or {})
    return Markup('<code class="text-break">{}</code>').format(json.dumps(value, sort_keys=True))


def when_formatter(view, context, model, name):
    value = getattr(model, name)
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


class SecureModelView(AdminOnly, ModelView):
    # Flask-WTF's global CSRFProtect checks every POST: its form class carries the token (not SecureForm)
    form_base_class = ModelForm
    # the row delete asks its confirmation through our script (Flask-Admin's inline one is blocked by the CSP)
    list_template = "admin/console_list.html"
    filter_converter = FilterConverter()
    page_size = 50
    can_view_details = True

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        """Flask-Admin's page, fetched as the API's lists are: the page's ids first (an index walk to the
        offset, no join), then those rows with their related objects (one statement, however deep the page)."""
        count, query = super().get_list(page, sort_column, sort_desc, search, filters, False, page_size)
        if not execute:
            return count, query
        key = getattr(self.model, self._primary_key)
        ids = [row[0] for row in query.with_entities(key)]
        if not ids:
            return count, []
        rows = self.get_query().filter(key.in_(ids))
        for relation in self._auto_joins:
            rows = rows.options(joinedload(relation))
        by_id = {getattr(row, self._primary_key): row for row in rows}
        return count, [by_id[i] for i in ids if i in by_id]

    def get_one(self, id):
        """The row of ``?id=`` (details, edit, delete), or None (Flask-Admin then says "Record does not exist")
        for an id no row can have: beyond the column it is a database error on PostgreSQL, a 500 before."""
        if not isinstance(getattr(self.model, self._primary_key).type, Integer):
            return super().get_one(id)  # a text key (usage events): any text is a key the query can ask for
        try:
            valid = valid_id(int(id))
        except (TypeError, ValueError):
            return None
        return super().get_one(id) if valid else None

    def load(self, model_class, object_id):
        """The object of ``object_id`` or a 404 (ids in forms and URLs are user input)."""
        try:
            object_id = int(object_id)
        except (TypeError, ValueError):
            abort(404)
        obj = db.session.get(model_class, object_id) if valid_id(object_id) else None
        if obj is None:
            abort(404)
        return obj

    def confirmed(self) -> bool:
        """The request's form carries a valid CSRF token (the global check has run; this reads the form)."""
        return ConfirmForm().validate_on_submit()

    def refused(self, exc: CommandRefused):
        db.session.rollback()
        flash(exc.message, "error")


class ReadOnlyModelView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
