"""What every console view shares: admins only, CSRF on every form, filters for our column types."""

import json
from datetime import UTC, datetime

from flask import abort, flash, redirect, request, url_for
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters as model_filters
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import Integer
from sqlalchemy.orm import joinedload

from ...extensions import db
from ...models.status import Status
from ...models.types import MAX_ID, valid_id
from ...ops.commands import CommandRefused
from ...ops.runner import masked_params
from ...text import control_character_error
from ..forms import Form


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

    def _handle_view(self, name, **kwargs):
        """Admins only; and a page's return address (Flask-Admin's ``url``, which it redirects to after a form) is
        a path without control characters: a line break in it broke the redirect's header, a 500."""
        refusal = super()._handle_view(name, **kwargs)
        if refusal is None and (message := control_character_error(request.values.get("url", ""))):
            abort(400, f"The return address (url) {message}.")
        return refusal


class ConfirmForm(Form):
    """Only the CSRF token: for buttons that take no input."""


class ModelForm(Form):
    """The console's model forms: the pages' ``Form`` (Flask-WTF's CSRF token, which the global CSRFProtect
    checks; a message beside any field given a control character), and the edited object kept as ``_obj``, as
    Flask-Admin's own BaseForm does: its ``Unique`` validator reads it to let a record keep its own value (without
    it, no record with a unique field could be saved)."""

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


def _integers(value) -> list:
    return [
        n for n in (value if isinstance(value, list) else [value]) if isinstance(n, int) and not isinstance(n, bool)
    ]


def _integer_filter(base):
    """``base`` (one of Flask-Admin's integer filters) refusing a value no INTEGER column holds (``MAX_ID`` is its
    bound): Flask-Admin says "Invalid Filter Value" and lists without it. The database failed on it before, a 500
    (SQLite: "Python int too large to convert", PostgreSQL: "integer out of range")."""

    class IntegerFilter(base):
        def clean(self, value):
            cleaned = super().clean(value)
            if any(not -MAX_ID - 1 <= n <= MAX_ID for n in _integers(cleaned)):
                raise ValueError(f"{value!r} is beyond an integer column's range")
            return cleaned

    IntegerFilter.__name__ = IntegerFilter.__qualname__ = f"Integer{base.__name__}"
    return IntegerFilter


def _enum_filter(base):
    """``base`` (an integer filter) taking only the numbers of the column's enum (others failed in its type: a 500)."""

    class EnumFilter(base):
        def clean(self, value):
            cleaned = super().clean(value)
            for number in _integers(cleaned):
                self.column.type.enum_class(number)  # ValueError: not a member
            return cleaned

    EnumFilter.__name__ = EnumFilter.__qualname__ = f"Enum{base.__name__}"
    return EnumFilter


class FilterConverter(sqla_filters.FilterConverter):
    """Filters for our own column types: UTC timestamps, integer status enums, integers within the column's range."""

    utc_datetime_filters: tuple = ()  # filled below, from Flask-Admin's own lists
    integer_filters: tuple = ()

    @model_filters.convert("UTCDateTime")
    def conv_utc_datetime(self, column, name, **kwargs):
        return [f(column, name, **kwargs) for f in self.utc_datetime_filters]

    @model_filters.convert("int", "integer", "smallinteger", "smallint", "biginteger", "bigint", "mediumint")
    def conv_int(self, column, name, **kwargs):
        return [f(column, name, **kwargs) for f in self.integer_filters]

    @model_filters.convert("IntEnumType")
    def conv_int_enum(self, column, name, **kwargs):
        options = [(str(int(member)), member.name) for member in column.type.enum_class]
        return [
            _enum_filter(sqla_filters.IntEqualFilter)(column, name, options=options),
            _enum_filter(sqla_filters.IntNotEqualFilter)(column, name, options=options),
        ]


FilterConverter.utc_datetime_filters = tuple(_utc_filter(f) for f in sqla_filters.FilterConverter.datetime_filters)
FilterConverter.integer_filters = tuple(_integer_filter(f) for f in sqla_filters.FilterConverter.int_filters)


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

    def _get_list_extra_args(self):
        """The list's query (page, sort, search, filters) as Flask-Admin reads it, without what no query can ask:
        a page beyond any table (its offset overflowed the database's integers) or a NUL (PostgreSQL refuses it).
        Each is left out with a message, and the list shown."""
        args = super()._get_list_extra_args()
        page_size = self.get_safe_page_size(args.page_size)
        pages = MAX_ID // page_size if page_size else None  # no table holds more rows than ids
        if args.page and (args.page < 0 or (pages is not None and args.page > pages)):
            flash(f"There is no page {request.args.get('page', '')[:30]}: here is the first page.", "error")
            args.page = 0
        if args.search and "\x00" in args.search:
            flash("The search cannot hold a NUL character (\\u0000): here is the list without it.", "error")
            args.search = None
        return args

    def _get_list_filter_args(self):
        filters = super()._get_list_filter_args()
        if filters and any("\x00" in str(value) for _, _, value in filters):
            flash("A filter value cannot hold a NUL character (\\u0000): the list is shown without it.", "error")
            filters = [(index, name, value) for index, name, value in filters if "\x00" not in str(value)]
        return filters

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
        for an id no row can have: beyond the column, or a NUL, it is a database error on PostgreSQL, a 500 before."""
        if not isinstance(getattr(self.model, self._primary_key).type, Integer):
            # a text key (usage events): any text is a key the query can ask for, but a NUL (PostgreSQL refuses it)
            return None if id is None or "\x00" in id else super().get_one(id)
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

    def refused_text(self, *names: str, multi_line: tuple[str, ...] = ()) -> bool:
        """Flash the first of the request's hand-read form fields ``names`` that holds a control character (the
        rule of ``app.views.forms``, for the small inline forms of the details pages) and say whether one did."""
        for name in (*names, *multi_line):
            message = control_character_error(request.form.get(name, ""), multi_line=name in multi_line)
            if message:
                flash(f"{name.replace('_', ' ').capitalize()}: {message}.", "error")
                return True
        return False

    def refused(self, exc: CommandRefused):
        db.session.rollback()
        flash(exc.message, "error")


class ReadOnlyModelView(SecureModelView):
    can_create = False
    can_edit = False
    can_delete = False
