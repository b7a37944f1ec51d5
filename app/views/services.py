"""Self-service: the catalog, the user's deployments and the commands on them, followed live.

Someone else's deployment or command is a 404, as if it did not exist; admins see everyone's
(the console links here). Every write is a CSRF-protected form; a refused command is a message on
the page with what was typed kept.
"""

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import IntegerField, StringField
from wtforms.validators import InputRequired, Length, NumberRange

from ..extensions import db
from ..jobs.provisioning import submit, submit_retry
from ..models import ApiKey, Phase, ServiceCommand, ServiceConfiguration, ServiceDeployment, ServicePlan, Status
from ..ops import engine
from ..ops.commands import CommandRefused
from ..ops.params import format_params
from ..ops.progress import command_progress
from ..ops.runner import masked_params
from .account import api_url

bp = Blueprint("services", __name__)
REFUSED_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409}
SIGNUP_PLAN = "omegaml"  # what sign-up provisions: the getting-started steps follow it
MAX_ID = 2**63 - 1


@bp.app_template_filter("params")
def params_filter(params: dict) -> str:
    """A command's or deployment's params as ``k=v,...`` with secrets masked."""
    return format_params(masked_params(params or {}))


class ParamsForm(FlaskForm):
    params = StringField(
        "Parameters",
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[Length(max=2000)],
        description="Comma-separated key=value pairs, e.g. size=2 (optional)",
    )


class ScaleForm(FlaskForm):
    size = IntegerField("Size", validators=[InputRequired(), NumberRange(min=0, max=100)])


class ConfirmForm(FlaskForm):
    """Only the CSRF token: the action takes no input."""


def _user():
    return current_user._get_current_object()


def own_deployment(deployment_id: int) -> ServiceDeployment:
    deployment = db.session.get(ServiceDeployment, deployment_id) if deployment_id <= MAX_ID else None
    if deployment is None or (deployment.user_id != current_user.id and not current_user.admin):
        abort(404)
    return deployment


def own_command(command_id: int, *options) -> ServiceCommand:
    command = (
        db.session.scalar(select(ServiceCommand).where(ServiceCommand.id == command_id).options(*options))
        if command_id <= MAX_ID
        else None
    )
    if command is None or (command.user_id != current_user.id and not current_user.admin):
        abort(404)
    return command


def latest_commands(deployment_ids) -> dict[int, ServiceCommand]:
    """Each deployment's newest command, in one statement."""
    if not deployment_ids:
        return {}
    newest = (
        select(func.max(ServiceCommand.id))
        .where(ServiceCommand.deployment_id.in_(deployment_ids))
        .group_by(ServiceCommand.deployment_id)
    )
    commands = db.session.scalars(select(ServiceCommand).where(ServiceCommand.id.in_(newest)))
    return {command.deployment_id: command for command in commands}


def getting_started(user, deployments, commands) -> dict:
    """The new user's next steps: the omegaml service being prepared, an API key, the login line."""
    omegaml = next((d for d in deployments if d.plan.name == SIGNUP_PLAN), None)
    has_key = (
        db.session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        )
        > 0
    )
    ready = omegaml is not None and omegaml.status == Status.COMPLETED
    return {
        "deployment": omegaml,
        "command": commands.get(omegaml.id) if omegaml is not None else None,
        "ready": ready,
        "has_key": has_key,
        "done": ready and has_key,
        "login_line": f"om cloud login --apiurl {api_url()} {user.userid} <apikey>",
    }


def render_services(install_forms=None, status=200):
    user = _user()
    plans = db.session.scalars(
        select(ServicePlan)
        .where(ServicePlan.offered.is_(True), ServicePlan.active.is_(True))
        .order_by(ServicePlan.name)
    ).all()
    deployments = db.session.scalars(
        select(ServiceDeployment)
        .where(ServiceDeployment.user_id == user.id, ServiceDeployment.status != Status.REMOVED)
        .options(joinedload(ServiceDeployment.plan))
        .order_by(ServiceDeployment.id)
    ).all()
    commands = latest_commands([d.id for d in deployments])
    recent = db.session.scalars(
        select(ServiceCommand)
        .where(ServiceCommand.user_id == user.id)
        .options(joinedload(ServiceCommand.plan))
        .order_by(ServiceCommand.id.desc())
        .limit(10)
    ).all()
    forms = {plan.name: ParamsForm(formdata=None, prefix=f"install-{plan.id}") for plan in plans}
    forms.update(install_forms or {})
    page = render_template(
        "services/index.html",
        plans=plans,
        deployments=deployments,
        commands=commands,
        recent=recent,
        forms=forms,
        start=getting_started(user, deployments, commands),
    )
    return page, status


@bp.route("/services")
@login_required
def index():
    """The catalog, the user's deployments with their status and health, and the next steps after sign-up."""
    return render_services()


@bp.route("/services/<plan_name>/install", methods=["POST"])
@login_required
def install(plan_name: str):
    """Install an offered plan with the params typed; follow it on the command's page."""
    plan = ServicePlan.by_name(plan_name) if len(plan_name) <= 63 else None
    if plan is None or not plan.offered:
        abort(404)
    form = ParamsForm(prefix=f"install-{plan.id}")
    if not form.validate_on_submit():
        return render_services({plan.name: form}, 400)
    try:
        command = submit(plan=plan, user=_user(), phase=Phase.INSTALL, params=form.params.data, issuer=_user())
    except CommandRefused as exc:
        db.session.rollback()
        form.params.errors = [exc.message]
        return render_services({plan.name: form}, REFUSED_STATUS[exc.code])
    flash(f"Installing {plan.title or plan.name}: follow it below.", "success")
    return redirect(url_for("services.command", command_id=command.id))


def render_deployment(deployment, update=None, scale=None, status=200):
    commands = db.session.scalars(
        select(ServiceCommand)
        .where(ServiceCommand.deployment_id == deployment.id)
        .order_by(ServiceCommand.id.desc())
        .limit(20)
    ).all()
    params = masked_params(deployment.params or {})
    size = (deployment.params or {}).get("size", "")
    page = render_template(
        "services/deployment.html",
        deployment=deployment,
        commands=commands,
        update_form=update or ParamsForm(formdata=None, data={"params": format_params(params)}),
        scale_form=scale or ScaleForm(formdata=None, data={"size": int(size) if str(size).isdigit() else None}),
        params=params,
        busy=next((c for c in commands if not c.status.is_final), None),
    )
    return page, status


@bp.route("/services/deployment/<int:deployment_id>")
@login_required
def deployment(deployment_id: int):
    """One deployment: its params, its commands, and the forms to update, scale or uninstall it."""
    return render_deployment(own_deployment(deployment_id))


def command_on(deployment: ServiceDeployment, phase: str, params: str, form_name: str, form):
    if deployment.status == Status.REMOVED:
        abort(404)
    try:
        command = submit(
            plan=deployment.plan,
            user=deployment.user,
            phase=phase,
            params=params,
            issuer=_user(),
            deployment_id=deployment.id,
            privileged=current_user.admin,
        )
    except CommandRefused as exc:
        db.session.rollback()
        if form is None:
            flash(exc.message, "danger")
            return redirect(url_for("services.deployment", deployment_id=deployment.id))
        next(iter(form)).errors = [exc.message]  # the form's first field
        return render_deployment(deployment, status=REFUSED_STATUS[exc.code], **{form_name: form})
    return redirect(url_for("services.command", command_id=command.id))


@bp.route("/services/deployment/<int:deployment_id>/update", methods=["POST"])
@login_required
def update(deployment_id: int):
    """Update the deployment with new params (to the plan's newest configuration)."""
    deployment = own_deployment(deployment_id)
    form = ParamsForm()
    if not form.validate_on_submit():
        return render_deployment(deployment, update=form, status=400)
    return command_on(deployment, Phase.UPDATE, form.params.data, "update", form)


@bp.route("/services/deployment/<int:deployment_id>/scale", methods=["POST"])
@login_required
def scale(deployment_id: int):
    """Scale: an update of ``size`` alone."""
    deployment = own_deployment(deployment_id)
    form = ScaleForm()
    if not form.validate_on_submit():
        return render_deployment(deployment, scale=form, status=400)
    return command_on(deployment, Phase.UPDATE, f"size={form.size.data}", "scale", form)


@bp.route("/services/deployment/<int:deployment_id>/uninstall", methods=["GET", "POST"])
@login_required
def uninstall(deployment_id: int):
    """Ask for confirmation, then uninstall."""
    deployment = own_deployment(deployment_id)
    if deployment.status == Status.REMOVED:
        abort(404)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        return command_on(deployment, Phase.UNINSTALL, "", "confirm", None)
    return render_template("services/uninstall.html", deployment=deployment, form=form)


@bp.route("/commands/<int:command_id>")
@login_required
def command(command_id: int):
    """A command's live progress: its steps, a progress bar, the running task's log (polled by progress.js)."""
    command = own_command(command_id, selectinload(ServiceCommand.tasks), joinedload(ServiceCommand.plan))
    return render_template(
        "services/command.html",
        command=command,
        progress=command_progress(command),
        retry_form=ConfirmForm(formdata=None),
    )


@bp.route("/commands/<int:command_id>/progress")
def progress(command_id: int):
    """The JSON the command page polls: status, steps, percent, the log tail."""
    if not current_user.is_authenticated:
        return jsonify(error="unauthorized", message="log in to follow this command"), 401
    if command_id > MAX_ID:
        return jsonify(error="not_found", message=f"no command {command_id}"), 404
    command = db.session.scalar(
        select(ServiceCommand)
        .where(ServiceCommand.id == command_id)
        .options(
            selectinload(ServiceCommand.tasks),
            joinedload(ServiceCommand.deployment),
            joinedload(ServiceCommand.configuration).selectinload(ServiceConfiguration.steps),
        )
    )
    if command is None or (command.user_id != current_user.id and not current_user.admin):
        return jsonify(error="not_found", message=f"no command {command_id}"), 404
    response = jsonify(command_progress(command))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/commands/<int:command_id>/retry", methods=["POST"])
@login_required
def retry(command_id: int):
    """Retry a failed command as a new one, and follow that."""
    command = own_command(command_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        again = submit_retry(command, issuer=_user())
    except CommandRefused as exc:
        db.session.rollback()
        flash(exc.message, "danger")
        return redirect(url_for("services.command", command_id=command.id))
    flash(f"Retrying: this is command {again.id}, a retry of command {command.id}.", "success")
    return redirect(url_for("services.command", command_id=again.id))


@bp.route("/commands/<int:command_id>/cancel", methods=["POST"])
@login_required
def cancel(command_id: int):
    """Cancel a command that has not finished."""
    command = own_command(command_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        outcome = engine.request_cancel(command)
    except CommandRefused as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    else:
        flash(f"Command {command.id}: {outcome}.", "info")
    return redirect(url_for("services.command", command_id=command.id))
