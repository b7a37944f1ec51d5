"""Self-service: the catalog, the user's deployments and the commands on them, followed live.

Someone else's deployment or command is a 404, as if it did not exist; admins see everyone's
(the console links here). Every write is a CSRF-protected form; a refused command is a message on
the page with what was typed kept. The pages show only the actions that can succeed, as
``app.ops.offers`` decides; the handlers ask it too, so a hand-made POST gets the same refusal.
Internal plans (``signup``) are not listed: users never command them.
"""

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from ..extensions import db
from ..jobs.provisioning import submit, submit_retry
from ..models import (
    ApiKey,
    FailureReason,
    Phase,
    ServiceCommand,
    ServiceConfiguration,
    ServiceDeployment,
    ServicePlan,
    Status,
)
from ..models.types import valid_id
from ..ops import engine, offers
from ..ops.commands import CommandRefused, ParamsRefused
from ..ops.params import format_params
from ..ops.progress import command_progress
from ..ops.runner import masked_params
from .account import api_url
from .forms import Form
from .parameter_forms import parameter_form

bp = Blueprint("services", __name__)
REFUSED_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409}
SIGNUP_PLAN = "omegaml"  # what sign-up provisions: the getting-started steps follow it
ACTIONS = ("update", "scale", "uninstall")
# how a failed command reads, by failure reason: a cancelled one was not a failure
FAILURE_WORDING = {
    FailureReason.CANCELLED: "This {phase} was cancelled.",
    FailureReason.SCRIPT_ERROR: "This {phase} failed: a step exited with an error.",
    FailureReason.TIMEOUT: "This {phase} failed: a step took longer than its timeout.",
    FailureReason.WORKER_LOST: "This {phase} failed: the worker running it stopped answering.",
    FailureReason.SYSTEM_ERROR: "This {phase} failed: omegaops could not run it.",
}


@bp.app_template_filter("params")
def params_filter(params: dict) -> str:
    """A command's or deployment's params as ``k=v,...`` with secrets masked."""
    return format_params(masked_params(params or {}))


@bp.app_template_filter("failure_headline")
def failure_headline(command: ServiceCommand) -> str:
    """What a FAILED command's page says first: cancelled, or failed and how."""
    wording = FAILURE_WORDING.get(command.failure_reason)
    if wording is None:
        wording = "This {phase} failed" + (f": {command.failure_reason}." if command.failure_reason else ".")
    return wording.format(phase=command.phase)


class ConfirmForm(Form):
    """Only the CSRF token: the action takes no input."""


def _user():
    return current_user._get_current_object()


def own_deployment(deployment_id: int) -> ServiceDeployment:
    deployment = db.session.get(ServiceDeployment, deployment_id) if valid_id(deployment_id) else None
    if deployment is None or (deployment.user_id != current_user.id and not current_user.admin):
        abort(404)
    return deployment


def own_command(command_id: int, *options) -> ServiceCommand:
    command = (
        db.session.scalar(select(ServiceCommand).where(ServiceCommand.id == command_id).options(*options))
        if valid_id(command_id)
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


def deployment_actions(deployment: ServiceDeployment) -> dict[str, CommandRefused | None]:
    """Each action on the deployment page and why it cannot be taken (None: it can)."""
    return {action: offers.deployment_refusal(deployment, _user(), action) for action in ACTIONS}


def render_services(install_forms=None, status=200, refused: CommandRefused | None = None):
    user = _user()
    plans = db.session.scalars(
        select(ServicePlan)
        .where(ServicePlan.offered.is_(True), ServicePlan.active.is_(True))
        .order_by(ServicePlan.name)
    ).all()
    deployments = db.session.scalars(
        select(ServiceDeployment)
        .join(ServicePlan, ServiceDeployment.plan_id == ServicePlan.id)
        .where(ServiceDeployment.user_id == user.id, ServiceDeployment.status != Status.REMOVED, offers.listed())
        .options(joinedload(ServiceDeployment.plan))
        .order_by(ServiceDeployment.id)
    ).all()
    commands = latest_commands([d.id for d in deployments])
    recent = db.session.scalars(
        select(ServiceCommand)
        .join(ServicePlan, ServiceCommand.plan_id == ServicePlan.id)
        .where(ServiceCommand.user_id == user.id, offers.listed())
        .options(joinedload(ServiceCommand.plan))
        .order_by(ServiceCommand.id.desc())
        .limit(10)
    ).all()
    forms = {plan.name: install_form(plan, submitted=False) for plan in plans}
    forms.update(install_forms or {})
    page = render_template(
        "services/index.html",
        offers=[offers.install_offer(plan, user, deployments) for plan in plans],
        deployments=deployments,
        actions={d.id: deployment_actions(d) for d in deployments},
        commands=commands,
        recent=recent,
        forms=forms,
        refused=refused,
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
    form = install_form(plan)
    refused = offers.install_offer(plan, _user()).refusal
    if refused is not None:
        return render_services(status=REFUSED_STATUS[refused.code], refused=refused)
    if not form.validate_on_submit():
        return render_services({plan.name: form}, 400)
    try:
        command = submit(plan=plan, user=_user(), phase=Phase.INSTALL, params=form.given(), issuer=_user())
    except CommandRefused as exc:
        db.session.rollback()
        if not offers.install_offer(plan, _user()).can_install:  # installed meanwhile: the form is gone
            return render_services(status=REFUSED_STATUS[exc.code], refused=exc)
        form.show(exc)
        return render_services({plan.name: form}, REFUSED_STATUS[exc.code])
    flash(f"Installing {plan.title or plan.name}: follow it below.", "success")
    return redirect(url_for("services.command", command_id=command.id))


def install_form(plan: ServicePlan, submitted: bool = True):
    """The catalog's install form of ``plan``: a field per declared parameter (or the ``k=v`` field)."""
    return parameter_form(plan, prefix=f"install-{plan.id}", submitted=submitted)


def update_form(deployment: ServiceDeployment, submitted: bool = True):
    """The update form: the declared parameters with the deployment's current values."""
    return parameter_form(deployment.plan, install=False, current=deployment.params, submitted=submitted)


def scale_form(deployment: ServiceDeployment, submitted: bool = True):
    """The Scale form: ``size`` alone, with the plan's bounds, showing the current size."""
    size = offers.current_size(deployment)
    return parameter_form(
        deployment.plan,
        prefix="scale",
        install=False,
        only=(offers.SIZE,),
        current={offers.SIZE: size} if size is not None else None,
        submitted=submitted,
    )


def render_deployment(deployment, update=None, scale=None, status=200, refused: CommandRefused | None = None):
    commands = db.session.scalars(
        select(ServiceCommand)
        .where(ServiceCommand.deployment_id == deployment.id)
        .order_by(ServiceCommand.id.desc())
        .limit(20)
    ).all()
    params = masked_params(deployment.params or {})
    page = render_template(
        "services/deployment.html",
        deployment=deployment,
        commands=commands,
        actions=deployment_actions(deployment),
        update_form=update or update_form(deployment, submitted=False),
        scale_form=scale or scale_form(deployment, submitted=False),
        params=params,
        refused=refused,
        busy=next((c for c in commands if not c.status.is_final), None),
    )
    return page, status


def refuse(deployment, refused: CommandRefused):
    """The deployment page saying why an action it does not offer was refused."""
    return render_deployment(deployment, status=REFUSED_STATUS[refused.code], refused=refused)


@bp.route("/services/deployment/<int:deployment_id>")
@login_required
def deployment(deployment_id: int):
    """One deployment: its params, its commands, and the forms to update, scale or uninstall it that apply."""
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
        form.show(exc)  # beside the field of the parameter refused
        return render_deployment(deployment, status=REFUSED_STATUS[exc.code], **{form_name: form})
    return redirect(url_for("services.command", command_id=command.id))


@bp.route("/services/deployment/<int:deployment_id>/update", methods=["POST"])
@login_required
def update(deployment_id: int):
    """Update the deployment with new params (to the plan's newest configuration)."""
    deployment = own_deployment(deployment_id)
    if refused := offers.deployment_refusal(deployment, _user(), "update"):
        return refuse(deployment, refused)
    form = update_form(deployment)
    if not form.validate_on_submit():
        return render_deployment(deployment, update=form, status=400)
    return command_on(deployment, Phase.UPDATE, form.given(deployment.params), "update", form)


@bp.route("/services/deployment/<int:deployment_id>/scale", methods=["POST"])
@login_required
def scale(deployment_id: int):
    """Scale: an update of ``size`` alone, for the plans that take one."""
    deployment = own_deployment(deployment_id)
    if refused := offers.deployment_refusal(deployment, _user(), "scale"):
        return refuse(deployment, refused)
    form = scale_form(deployment)
    if not form.validate_on_submit():
        return render_deployment(deployment, scale=form, status=400)
    size = form.given()  # empty: the size is what the plan's parameters say of an empty value
    return command_on(deployment, Phase.UPDATE, size or {offers.SIZE: ""}, "scale", form)


@bp.route("/services/deployment/<int:deployment_id>/uninstall", methods=["GET", "POST"])
@login_required
def uninstall(deployment_id: int):
    """Ask for confirmation, then uninstall."""
    deployment = own_deployment(deployment_id)
    if deployment.status == Status.REMOVED:
        abort(404)
    if refused := offers.deployment_refusal(deployment, _user(), "uninstall"):
        return refuse(deployment, refused)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        return command_on(deployment, Phase.UNINSTALL, "", "confirm", None)
    return render_template("services/uninstall.html", deployment=deployment, form=form)


def retry_form(command: ServiceCommand, submitted: bool = True):
    """The retry form: the failed command's params, to correct before it runs again (install and update)."""
    return parameter_form(command.plan, prefix="retry", install=False, current=command.params, submitted=submitted)


@bp.route("/commands/<int:command_id>")
@login_required
def command(command_id: int):
    """A command's live progress: its steps, a progress bar, the running task's log (polled by progress.js)."""
    return render_command(own_command(command_id, selectinload(ServiceCommand.tasks), joinedload(ServiceCommand.plan)))


def render_command(command: ServiceCommand, form=None, status: int = 200):
    user = _user()
    retry_refused = offers.retry_refusal(command, user)
    return render_template(
        "services/command.html",
        command=command,
        progress=command_progress(command),
        cancelled=command.failure_reason == FailureReason.CANCELLED,
        can_retry=retry_refused is None,
        # a cancelled or failed install whose deployment is gone is installed anew from the catalog
        install_again=retry_refused is not None
        and command.phase == Phase.INSTALL
        and command.deployment.status == Status.REMOVED
        and offers.install_offer(command.plan, user).can_install,
        can_cancel=offers.cancel_refusal(command, user) is None,
        retry_form=ConfirmForm(formdata=None),
        retry_params_form=form or retry_form(command, submitted=False),
    ), status


@bp.route("/commands/<int:command_id>/progress")
def progress(command_id: int):
    """The JSON the command page polls: status, steps, percent, the log tail."""
    if not current_user.is_authenticated:
        return jsonify(error="unauthorized", message="log in to follow this command"), 401
    if not valid_id(command_id):
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
    form = retry_form(command)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return render_command(command, form, 400)
    if refused := offers.retry_refusal(command, _user()):
        flash(refused.message, "danger")
        return redirect(url_for("services.command", command_id=command.id))
    given = form.given(command.params) if command.phase in (Phase.INSTALL, Phase.UPDATE) else None
    try:
        again = submit_retry(command, issuer=_user(), params=given or None)
    except ParamsRefused as exc:
        db.session.rollback()
        form.show(exc)  # beside the field, the values typed kept
        return render_command(command, form, 400)
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
    if refused := offers.cancel_refusal(command, _user()):
        flash(refused.message, "danger")
        return redirect(url_for("services.command", command_id=command.id))
    try:
        outcome = engine.request_cancel(command)
    except CommandRefused as exc:
        db.session.rollback()
        flash(exc.message, "danger")
    else:
        flash(f"Command {command.id}: {outcome}.", "info")
    return redirect(url_for("services.command", command_id=command.id))
