"""Plans and configurations in the console: plan fields in a form; steps and env edited as the YAML
spec (the loader's validation and messages, a new configuration version when they change); import
and export in the spec format; two configuration versions side by side."""

import difflib
import re

import yaml
from flask import Response, current_app, flash, redirect, request, url_for
from flask_admin import expose
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import ValidationError
from wtforms.validators import NumberRange, Optional, Regexp

from ...extensions import db
from ...models import ServiceConfiguration, ServicePlan
from ...ops.plans import PlanInUse, live_deployments, remove_plan
from ...ops.specs import (
    MAX_BASE_FEE,
    PLAN_NAME_RE,
    SpecError,
    apply_specs,
    dump_specs,
    keep_masked,
    parse_plan,
    parse_specs,
    plan_spec,
    spec_fallbacks,
)
from ...ops.yamlsafe import YamlError, load_yaml
from .base import ConfirmForm, ReadOnlyModelView, SecureModelView, masked_formatter, when_formatter

NEXT_COLUMN = re.compile(
    r'<td class="diff_next"[^>]*>.*?</td>|<th class="diff_next"[^>]*>.*?</th>|<colgroup></colgroup>'
)
MAX_SPEC = 200_000  # characters of YAML accepted from the editor or an upload


def read_yaml(text: str, source: str):
    """The spec's YAML, read as ``parse_specs`` reads a file (``load_yaml``: bounded depth, aliases expanded),
    or a SpecError saying why, in its words."""
    if len(text) > MAX_SPEC:
        raise SpecError(f"{source}: longer than {MAX_SPEC} characters")
    try:
        return load_yaml(text)
    except YamlError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(f"{source}: not valid YAML{at}: {exc.problem}") from None


def read_specs(text: str, source: str):
    """Parse spec text the way `flask createservice` does, without reading the server's environment."""
    config = current_app.config
    if len(text) > MAX_SPEC:
        raise SpecError(f"{source}: longer than {MAX_SPEC} characters")
    return parse_specs(text, source, config["SCRIPTS_DIR"], spec_fallbacks(config), environ={})


def apply_and_commit(specs) -> list:
    """Write the specs (secrets shown masked keep their values); a racing writer is a SpecError."""
    for spec in specs:
        plan = ServicePlan.by_name(spec.name)
        if plan is not None:
            keep_masked(spec, plan.current_configuration, plan.defaults)
    try:
        results = apply_specs(specs)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise SpecError("another change to these plans was saved at the same time: try again") from None
    return results


def side_by_side(left: ServiceConfiguration, right: ServiceConfiguration) -> Markup:
    """An HTML table with the two versions' spec text side by side, changes marked."""
    texts = []
    for configuration in (left, right):
        spec = plan_spec(configuration.plan, configuration)
        texts.append(dump_specs([{"configuration": spec.get("configuration"), "steps": spec.get("steps", [])}]))
    table = difflib.HtmlDiff(tabsize=2, wrapcolumn=70).make_table(
        texts[0].splitlines(), texts[1].splitlines(), f"version {left.version}", f"version {right.version}"
    )
    # its "next change" column (links marked f, n, t) says nothing an operator needs: the colours say it
    table = NEXT_COLUMN.sub("", table)
    # HtmlDiff escapes the text it shows; the table is its own markup
    return Markup(table)  # noqa: S704


def base_fee_formatter(view, context, model, name):
    from ...billing.format import money

    return f"{money(model.base_fee)} {current_app.config['BILLING_CURRENCY']}"


class PlanView(SecureModelView):
    can_delete = False  # plans are retired (`flask deleteservice --force`), never deleted with their history
    details_template = "admin/plan_details.html"
    list_template = "admin/plan_list.html"
    column_list = ("name", "title", "offered", "one_per_user", "active", "updated_at")
    column_searchable_list = ("name", "title")
    column_filters = ("offered", "active")
    column_details_list = (
        "name",
        "title",
        "description",
        "offered",
        "one_per_user",
        "active",
        "base_fee",
        "defaults",
        "retired_at",
    )
    column_formatters = {
        "defaults": masked_formatter,
        "updated_at": when_formatter,
        "retired_at": when_formatter,
        "base_fee": base_fee_formatter,
    }
    column_labels = {"base_fee": "Base fee a month"}
    # steps and env are edited as the spec (the editor below); retiring goes through deleteservice / the API
    form_columns = ("name", "title", "description", "offered", "one_per_user", "base_fee")
    form_args = {
        "base_fee": {
            "label": "Base fee a month, in cents",
            "description": "whole minor units (1990 = 19.90), prorated by the days deployed",
            "default": 0,
            "validators": [Optional(), NumberRange(min=0, max=MAX_BASE_FEE)],
        },
        "name": {
            "validators": [Regexp(PLAN_NAME_RE, message="lowercase letters, digits, - and _, starting with a letter")]
        },
    }

    def edit_form(self, obj=None):
        """The name is shown read-only: the omegaml client and deployments know the plan by it."""
        form = super().edit_form(obj)
        form.name.render_kw = {"readonly": True}
        if obj is not None:
            form.name.data = obj.name  # whatever was posted: a name never changes
        return form

    def on_model_change(self, form, model, is_created):
        if model.base_fee is None:  # left empty: no base fee
            model.base_fee = 0
        if not is_created and db.inspect(model).attrs.name.history.has_changes():
            raise ValidationError("a plan's name cannot change: the omegaml client and deployments use it")

    def render(self, template, **kwargs):
        if template == self.details_template:
            plan = kwargs["model"]
            kwargs["live"] = len(live_deployments(plan)) if plan.active else 0
            kwargs["action_form"] = ConfirmForm(formdata=None)
            kwargs["configurations"] = db.session.scalars(
                select(ServiceConfiguration)
                .where(ServiceConfiguration.plan_id == plan.id)
                .order_by(ServiceConfiguration.version.desc())
            ).all()
        return super().render(template, **kwargs)

    @expose("/<int:plan_id>/retire", methods=["POST"])
    def retire(self, plan_id: int):
        """Retire the plan (delete it if it was never used), as `flask deleteservice [--force]` does."""
        plan = self.load(ServicePlan, plan_id)
        if not self.confirmed():
            flash("Unknown action.", "error")
            return redirect(url_for(".details_view", id=plan.id))
        name = plan.name
        try:
            action, live = remove_plan(plan, force=request.form.get("force") == "yes")
        except PlanInUse as exc:
            db.session.rollback()
            flash(f"{exc}, or retire it anyway (its live deployments keep running).", "error")
            return redirect(url_for(".details_view", id=plan.id))
        db.session.commit()
        if action == "deleted":
            flash(f"{name}: deleted (it was never deployed).", "success")
            return redirect(url_for(".index_view"))
        kept = f"; {len(live)} live deployment(s) keep running until uninstalled" if live else ""
        flash(f"{name}: retired, users can no longer install it (its history is kept){kept}.", "success")
        return redirect(url_for(".details_view", id=plan.id))

    @expose("/<int:plan_id>/spec", methods=["GET", "POST"])
    def spec(self, plan_id: int):
        """Edit the plan's env and steps (in order) as its YAML spec; saving validates it like a spec file."""
        plan = self.load(ServicePlan, plan_id)
        form = ConfirmForm()
        text, error = None, None
        if request.method == "POST" and form.validate_on_submit():
            text = request.form.get("spec", "")
            try:
                item = read_yaml(text, "the spec")
                config = current_app.config
                spec = parse_plan(item, "the spec", config["SCRIPTS_DIR"], spec_fallbacks(config), environ={})
                if spec.name != plan.name:
                    raise SpecError(f"plan: is {spec.name!r}; this editor changes {plan.name!r} only (use Import)")
                (result,) = apply_and_commit([spec])
            except SpecError as exc:
                db.session.rollback()
                error = str(exc)
            else:
                if result.action == "unchanged":
                    flash(f"{plan.name}: nothing changed (configuration version {result.version}).", "info")
                else:
                    flash(f"{plan.name}: saved, configuration version {result.version}.", "success")
                return redirect(url_for(".details_view", id=plan.id))
        if text is None:
            text = yaml.safe_dump(plan_spec(plan), sort_keys=False, allow_unicode=True)
        return self.render("admin/plan_spec.html", plan=plan, text=text, error=error, form=form)

    @expose("/import", methods=["GET", "POST"])
    def import_specs(self):
        """Create or update plans from a spec file (pasted or uploaded): all valid, or nothing is written."""
        form = ConfirmForm()
        text, error, results = "", None, None
        if request.method == "POST" and form.validate_on_submit():
            upload = request.files.get("file")
            source = "the pasted spec"
            text = request.form.get("spec", "")
            if upload is not None and upload.filename:
                source = upload.filename
                raw = upload.read(MAX_SPEC + 1)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text, error = "", f"{source}: not UTF-8 text"
            if error is None:
                try:
                    if not text.strip():
                        raise SpecError("paste a spec or choose a file")
                    results = apply_and_commit(read_specs(text, source))
                except SpecError as exc:
                    db.session.rollback()
                    error, results = str(exc), None
        return self.render("admin/plan_import.html", text=text, error=error, results=results, form=form)

    @expose("/<int:plan_id>/export")
    def export_spec(self, plan_id: int):
        """The plan as a spec file (secrets masked), for `flask createservice` or Import."""
        plan = self.load(ServicePlan, plan_id)
        configuration = None
        if request.args.get("configuration"):
            configuration = self.load(ServiceConfiguration, request.args["configuration"])
            if configuration.plan_id != plan.id:
                return redirect(url_for(".details_view", id=plan.id))
        text = dump_specs([plan_spec(plan, configuration)])
        suffix = f"-v{configuration.version}" if configuration is not None else ""
        return Response(
            text,
            mimetype="application/yaml",
            headers={"Content-Disposition": f'attachment; filename="{plan.name}{suffix}.yaml"'},
        )

    @expose("/<int:plan_id>/versions")
    def versions(self, plan_id: int):
        """Two configuration versions side by side (the two newest unless ?a= and ?b= name others)."""
        plan = self.load(ServicePlan, plan_id)
        configurations = db.session.scalars(
            select(ServiceConfiguration)
            .where(ServiceConfiguration.plan_id == plan.id)
            .order_by(ServiceConfiguration.version.desc())
        ).all()
        by_version = {c.version: c for c in configurations}
        try:
            a = int(request.args.get("a") or (configurations[1].version if len(configurations) > 1 else 0))
            b = int(request.args.get("b") or (configurations[0].version if configurations else 0))
        except ValueError:
            a = b = 0
        left, right = by_version.get(a), by_version.get(b)
        table = side_by_side(left, right) if left is not None and right is not None else None
        return self.render("admin/plan_versions.html", plan=plan, configurations=configurations, a=a, b=b, table=table)


class ConfigurationView(ReadOnlyModelView):
    details_template = "admin/configuration_details.html"
    column_list = ("plan", "version", "active", "digest", "created_at")
    column_filters = ("plan.name", "active")
    column_labels = {"plan.name": "Plan"}
    column_default_sort = ("id", True)
    column_details_list = ("plan", "version", "active", "env", "digest", "created_at")
    column_formatters = {"env": masked_formatter, "created_at": when_formatter}
