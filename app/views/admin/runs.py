"""Deployments, commands and tasks in the console: filters, details with secrets masked, and the
actions on them (update with params, scale, uninstall, check now; cancel, retry; a task's log live)."""

from flask import flash, jsonify, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from ...extensions import db
from ...jobs.provisioning import submit, submit_retry
from ...models import Phase, ServiceCommand, ServiceDeployment, ServiceTask
from ...models.types import valid_id
from ...ops import engine, offers
from ...ops.commands import CommandRefused, plan_parameters
from ...ops.parameters import Parameter
from ...ops.params import format_params
from ...ops.progress import command_masker, steps_of
from ...ops.runner import masked_params
from .base import ConfirmForm, ReadOnlyModelView, health_formatter, masked_formatter, status_formatter, when_formatter

LOG_CHUNK = 64_000  # characters of a task's log per poll
ACTIONS = {  # form button -> (phase, what the params field means)
    "update": Phase.UPDATE,
    "scale": Phase.UPDATE,
    "uninstall": Phase.UNINSTALL,
    "check": Phase.CHECK,
}

LABELS = {"plan.name": "Plan", "user.email": "User email", "user.userid": "Userid", "deployment_id": "Deployment"}
TIMES = {
    "created_at": when_formatter,
    "updated_at": when_formatter,
    "finished_at": when_formatter,
    "started_at": when_formatter,
    "checked_at": when_formatter,
    "removed_at": when_formatter,
}


def command_details_url(command_id: int) -> str:
    return url_for("servicecommand.details_view", id=command_id)


class DeploymentView(ReadOnlyModelView):
    column_labels = LABELS
    # sorting only on indexed columns: a list of 100,000 rows never sorts in memory
    column_sortable_list = ("id", "status", "created_at")
    details_template = "admin/deployment_details.html"
    column_list = ("id", "user", "plan", "status", "health", "created_at", "updated_at")
    column_filters = ("status", "health", "plan.name", "user.email", "user.userid", "created_at")
    column_default_sort = ("id", True)
    column_details_list = (
        "id",
        "user",
        "plan",
        "configuration",
        "status",
        "health",
        "text",
        "params",
        "settings",
        "checked_at",
        "created_at",
        "updated_at",
        "removed_at",
    )
    column_formatters = {
        "status": status_formatter,
        "health": health_formatter,
        "params": masked_formatter,
        "settings": masked_formatter,
        **TIMES,
    }

    def render(self, template, **kwargs):
        if template == self.details_template:
            deployment = kwargs["model"]
            kwargs.update(
                commands=db.session.scalars(
                    select(ServiceCommand)
                    .where(ServiceCommand.deployment_id == deployment.id)
                    .options(joinedload(ServiceCommand.plan), joinedload(ServiceCommand.user))
                    .order_by(ServiceCommand.id.desc())
                    .limit(50)
                ).all(),
                action_form=ConfirmForm(formdata=None),
                params_text=format_params(masked_params(deployment.params or {})),
                size=(deployment.params or {}).get("size", ""),
                size_parameter=size_parameter(deployment),
            )
        return super().render(template, **kwargs)

    @expose("/<int:deployment_id>/command", methods=["POST"])
    def command(self, deployment_id: int):
        """Issue update (with params), scale (size), uninstall or check on the deployment, as an admin."""
        deployment = self.load(ServiceDeployment, deployment_id)
        back = redirect(url_for(".details_view", id=deployment.id))
        action = request.form.get("action", "")
        if action not in ACTIONS or not self.confirmed():
            flash("Unknown action.", "error")
            return back
        if self.refused_text("params", "size"):
            return back
        params = ""
        if action == "update":
            params = request.form.get("params", "").strip()
        elif action == "scale":  # the plan's parameters judge the size, as for the API, the pages and the CLI
            params = {"size": request.form.get("size", "").strip()}
        try:
            command = submit(
                plan=deployment.plan,
                user=deployment.user,
                phase=ACTIONS[action],
                params=params,
                issuer=current_user._get_current_object(),
                deployment_id=deployment.id,
                privileged=True,
            )
        except CommandRefused as exc:
            self.refused(exc)
            return back
        flash(f"Command {command.id} ({command.phase}) issued on deployment {deployment.id}.", "success")
        return redirect(command_details_url(command.id))


def size_parameter(deployment: ServiceDeployment) -> Parameter | None:
    """The size the Scale form takes, with the plan's bounds; None when the plan takes no size."""
    if not offers.takes_size(deployment.plan, deployment):
        return None
    return plan_parameters(deployment.plan).get("size")


class CommandView(ReadOnlyModelView):
    column_labels = LABELS
    column_sortable_list = ("id", "status", "created_at")
    details_template = "admin/command_details.html"
    column_list = ("id", "user", "plan", "phase", "status", "failure_reason", "created_at", "finished_at")
    column_filters = ("status", "phase", "failure_reason", "plan.name", "user.email", "deployment_id", "created_at")
    column_default_sort = ("id", True)
    column_details_list = (
        "id",
        "user",
        "issuer",
        "plan",
        "deployment",
        "configuration",
        "phase",
        "params",
        "status",
        "failure_reason",
        "failure_detail",
        "worker",
        "retry_of_id",
        "created_at",
        "started_at",
        "finished_at",
    )
    column_formatters = {"status": status_formatter, "params": masked_formatter, **TIMES}

    def get_one(self, id):
        try:
            command_id = int(id)
        except (TypeError, ValueError):
            return None
        return (
            db.session.scalar(
                select(ServiceCommand)
                .where(ServiceCommand.id == command_id)
                .options(
                    selectinload(ServiceCommand.tasks),
                    joinedload(ServiceCommand.user),
                    joinedload(ServiceCommand.plan),
                    joinedload(ServiceCommand.deployment),
                )
            )
            if valid_id(command_id)
            else None
        )

    def render(self, template, **kwargs):
        if template == self.details_template:
            command = kwargs["model"]
            kwargs.update(
                steps=steps_of(command), action_form=ConfirmForm(formdata=None), mask=command_masker(command)
            )
        return super().render(template, **kwargs)

    @expose("/<int:command_id>/cancel", methods=["POST"])
    def cancel(self, command_id: int):
        command = self.load(ServiceCommand, command_id)
        if self.confirmed():
            try:
                flash(f"Command {command.id}: {engine.request_cancel(command)}.", "info")
            except CommandRefused as exc:
                self.refused(exc)
        return redirect(command_details_url(command.id))

    @expose("/<int:command_id>/retry", methods=["POST"])
    def retry(self, command_id: int):
        command = self.load(ServiceCommand, command_id)
        if not self.confirmed():
            return redirect(command_details_url(command.id))
        try:
            again = submit_retry(command, issuer=current_user._get_current_object())
        except CommandRefused as exc:
            self.refused(exc)
            return redirect(command_details_url(command.id))
        flash(f"Command {again.id} retries command {command.id}.", "success")
        return redirect(command_details_url(again.id))


class TaskView(ReadOnlyModelView):
    column_labels = LABELS
    column_sortable_list = ("id", "status", "command_id")
    details_template = "admin/task_details.html"
    column_list = (
        "id",
        "command_id",
        "position",
        "attempt",
        "name",
        "status",
        "exit_code",
        "started_at",
        "finished_at",
    )
    column_filters = ("status", "command_id", "deployment_id", "failure_reason")
    column_default_sort = ("id", True)
    column_details_list = (
        "id",
        "command",
        "deployment",
        "position",
        "attempt",
        "name",
        "status",
        "exit_code",
        "failure_reason",
        "resolved",
        "host",
        "started_at",
        "finished_at",
    )
    column_formatters = {"status": status_formatter, **TIMES}

    def render(self, template, **kwargs):
        if template == self.details_template:
            task = kwargs["model"]
            kwargs["log"] = command_masker(task.command)(task.log or "")
        return super().render(template, **kwargs)

    @expose("/<int:task_id>/log")
    def log(self, task_id: int):
        """The task's log from ``?offset=`` on (JSON), for task-log.js to follow a running task."""
        task = self.load(ServiceTask, task_id)
        try:
            offset = max(int(request.args.get("offset", 0)), 0)
        except ValueError:
            return jsonify(error="bad_request", message="offset: must be a whole number"), 400
        text = command_masker(task.command)(task.log or "")
        # a log is appended to; when it was cut or masked differently, start again from the top
        reset = offset > len(text)
        start = 0 if reset else offset
        chunk = text[start : start + LOG_CHUNK]
        response = jsonify(
            status=task.status.name,
            final=task.status.is_final,
            reset=reset,
            offset=start + len(chunk),
            text=chunk,
        )
        response.headers["Cache-Control"] = "no-store"
        return response
