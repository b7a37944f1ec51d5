"""The management CLI, with the original service's command names and flags.

Every command exits non-zero with a one-line reason on bad input; none prints a traceback.
"""

import functools
import json
import os
import secrets
import sys
import time

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from .accounts import AccountError, create_api_key, create_user, provision_and_commit
from .extensions import db
from .jobs.provisioning import enqueue_command, submit_retry
from .models import ServiceCommand, ServiceConfiguration, ServiceDeployment, ServicePlan, Status, User
from .models.types import utcnow
from .models.users import USERID_RE
from .ops.commands import CommandRefused, issue_command
from .ops.engine import request_cancel
from .ops.ownership import load_specs
from .ops.plans import PlanInUse, remove_plan
from .ops.specs import SpecError, load_spec_files, spec_fallbacks


def db_command(f):
    """Run ``f`` in an app context; roll back and exit with one line on any database error."""

    @functools.wraps(f)
    @with_appcontext
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except click.ClickException:
            db.session.rollback()
            raise
        except SQLAlchemyError as exc:
            db.session.rollback()
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise click.ClickException(f"database error: {reason} (has `flask db upgrade` been run?)") from None
        except Exception as exc:
            db.session.rollback()
            if os.environ.get("OMEGAOPS_TRACEBACK"):
                raise
            raise click.ClickException(
                f"unexpected error: {type(exc).__name__}: {exc} (set OMEGAOPS_TRACEBACK=1 to see where)"
            ) from None

    return wrapper


def find_user(ident: str) -> User:
    """The user named by userid or email, or a ClickException."""
    user = User.find(ident)
    if user is None:
        raise click.ClickException(f"no user {ident!r} (give a userid or an email)")
    return user


def find_plan(name: str) -> ServicePlan:
    plan = ServicePlan.by_name(name)
    if plan is None:
        raise click.ClickException(f"no service plan named {name!r}")
    return plan


def find_command(command_id: int) -> ServiceCommand:
    command = db.session.get(ServiceCommand, command_id)
    if command is None:
        raise click.ClickException(f"no command {command_id}")
    return command


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.command("createservice")
@click.option(
    "--specs",
    "spec_paths",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=True),
    help="A YAML spec file, or a directory of them; repeatable.",
)
@click.option(
    "--keep-edits",
    "mode",
    flag_value="keep",
    help="Leave plans an operator edited since their last load as they are (`make run` does).",
)
@click.option(
    "--overwrite", "mode", flag_value="overwrite", help="Replace an operator's edits with what the specs say."
)
@db_command
def createservice(spec_paths, mode):
    """Create or update service plans from YAML specs (unchanged specs change nothing); refuse to overwrite
    an operator's edits unless told what to do with them."""
    try:
        plans = load_spec_files(spec_paths, current_app.config["SCRIPTS_DIR"], spec_fallbacks(current_app.config))
        if not plans:
            raise SpecError(f"no plans in {', '.join(spec_paths)}")
        report = load_specs(plans, mode or "refuse")
    except SpecError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    for line in report.lines():
        click.echo(line)


@click.command("deleteservice")
@click.option("--service", "name", required=True, help="The plan's name.")
@click.option("--force", is_flag=True, help="Retire the plan even though it has live deployments.")
@db_command
def deleteservice(name, force):
    """Delete a plan that was never deployed, or retire one with history; refuse while it is deployed."""
    plan = find_plan(name)
    try:
        action, live = remove_plan(plan, force)
    except PlanInUse as exc:
        raise click.ClickException(f"{exc}, or use --force to retire the plan") from None
    db.session.commit()
    if action == "deleted":
        click.echo(f"{name}: deleted")
    else:
        kept = f"; {len(live)} live deployment(s) keep running until uninstalled" if live else ""
        click.echo(f"{name}: retired (its history is kept){kept}")


@click.command("deployservice")
@click.option("--phase", required=True, help="install, update, uninstall or check.")
@click.option("--service", "name", required=True, help="The plan's name.")
@click.option("--user", "user_ident", required=True, help="The user's userid or email.")
@click.option("--params", default="", help='Comma-separated k=v pairs, e.g. "size=2,provider=".')
@click.option("--deployment", "deployment_id", type=int, default=None, help="Which deployment, when several.")
@click.option("--json", "as_json", is_flag=True, help="Print the command as JSON.")
@click.option("--wait", is_flag=True, help="Follow the command task by task; exit 0 only when it completes.")
@click.option("--timeout", default=3600, type=click.IntRange(1), help="With --wait: give up following after this.")
@db_command
def deployservice(phase, name, user_ident, params, deployment_id, as_json, wait, timeout):
    """Issue a command on a user's service; a worker executes it."""
    user = find_user(user_ident)
    try:
        command = issue_command(
            plan=name, user=user, phase=phase, params=params, deployment_id=deployment_id, privileged=True
        )
    except CommandRefused as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    queued = enqueue_command(command.id)
    if wait:
        click.echo(
            f"command {command.id}: {command.phase} {name} for {user.userid}, deployment {command.deployment_id}"
        )
        if not queued:
            click.echo("Redis is unreachable: the dispatcher will enqueue the command when it is back")
        follow_command(command.id, timeout)
        return
    if as_json:
        echo_json(
            {
                "id": command.id,
                "status": str(int(command.status)),
                "phase": command.phase,
                "service": name,
                "user": user.userid,
                "deployment": command.deployment_id,
                "queued": queued,
            }
        )
    else:
        note = "" if queued else " (Redis is unreachable: the dispatcher will enqueue it when it is back)"
        click.echo(
            f"command {command.id}: {command.phase} {name} for {user.userid}, deployment {command.deployment_id}, "
            f"status {command.status.name}{note}"
        )


def follow_command(command_id: int, timeout: float, poll: float = 0.5) -> None:
    """Print a command's progress task by task with its tasks' new log lines; fail unless it completes."""
    deadline = time.monotonic() + timeout
    shown_status: dict[int, Status] = {}
    shown_log: dict[int, str] = {}
    while True:
        db.session.expire_all()
        command = db.session.get(ServiceCommand, command_id)
        positions = [step.position for step in command.configuration.steps_for(command.phase)]
        total = len(positions)
        for task in command.tasks:
            number = positions.index(task.position) + 1 if task.position in positions else task.position
            if shown_status.get(task.id) != task.status:
                shown_status[task.id] = task.status
                attempt = f" (attempt {task.attempt})" if task.attempt > 1 else ""
                extra = f", exit code {task.exit_code}" if task.exit_code not in (None, 0) else ""
                extra += f", {task.failure_reason}" if task.failure_reason else ""
                bar = "#" * number + "." * max(total - number, 0)
                click.echo(f"[{bar}] step {number}/{total} {task.name}{attempt}: {task.status.name}{extra}")
            text, before = task.log or "", shown_log.get(task.id, "")
            if text != before:
                new = text[len(before) :] if text.startswith(before) else text
                for line in new.splitlines():
                    click.echo(f"    | {line}")
                shown_log[task.id] = text
        if command.status.is_final:
            break
        if time.monotonic() >= deadline:
            raise click.ClickException(
                f"command {command_id} is still {command.status.name} after {timeout:g}s (it goes on running)"
            )
        time.sleep(poll)
    if command.status != Status.COMPLETED:
        raise click.ClickException(
            f"command {command_id} {command.status.name}: {command.failure_reason}: {command.failure_detail}"
        )
    click.echo(f"command {command_id} COMPLETED")


@click.command("cancelcommand")
@click.argument("command_id", type=int)
@db_command
def cancelcommand(command_id):
    """Cancel a command: at once when it has not started, else its running step is stopped."""
    command = find_command(command_id)
    try:
        outcome = request_cancel(command)
    except CommandRefused as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"command {command_id}: {outcome}")


@click.command("retrycommand")
@click.argument("command_id", type=int)
@click.option("--wait", is_flag=True, help="Follow the new command; exit 0 only when it completes.")
@db_command
def retrycommand(command_id, wait):
    """Issue a failed command again, as a new command (its history is kept)."""
    command = find_command(command_id)
    try:
        again = submit_retry(command)
    except CommandRefused as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"command {again.id}: retry of command {command_id} ({again.phase}), status {again.status.name}")
    if wait:
        follow_command(again.id, 3600)


@click.command("listservices")
@click.option("--user", "user_ident", default=None, help="List this user's deployments instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_command
def listservices(user_ident, as_json):
    """List the plans and their configuration versions, or one user's deployments."""
    if user_ident:
        user = find_user(user_ident)
        deployments = list(
            db.session.scalars(
                select(ServiceDeployment)
                .where(ServiceDeployment.user_id == user.id)
                .options(db.joinedload(ServiceDeployment.plan), db.joinedload(ServiceDeployment.configuration))
                .order_by(ServiceDeployment.id)
            )
        )
        rows = [
            {
                "id": d.id,
                "service": d.plan.name,
                "version": d.configuration.version,
                "status": d.status.name,
                "health": d.health,
                "created_at": d.created_at.isoformat(timespec="seconds"),
            }
            for d in deployments
        ]
        if as_json:
            echo_json({"user": user.userid, "deployments": rows})
        elif not rows:
            click.echo(f"{user.userid} has no deployments")
        else:
            for row in rows:
                click.echo(
                    f"{row['id']:>6}  {row['service']:<16} v{row['version']:<4} {row['status']:<10} "
                    f"{row['health']:<10} {row['created_at']}"
                )
        return
    plans = list(
        db.session.scalars(
            select(ServicePlan).options(db.selectinload(ServicePlan.configurations)).order_by(ServicePlan.name)
        )
    )
    rows = [
        {
            "name": p.name,
            "title": p.title,
            "offered": p.offered,
            "one_per_user": p.one_per_user,
            "active": p.active,
            "versions": [c.version for c in p.configurations],
            "current": _current_version(p.configurations),
        }
        for p in plans
    ]
    if as_json:
        echo_json({"plans": rows})
    elif not rows:
        click.echo("no service plans (load some with `flask createservice --specs FILE`)")
    else:
        for row in rows:
            state = "offered" if row["offered"] else "internal"
            if not row["active"]:
                state = "retired"
            versions = ",".join(f"v{v}" for v in row["versions"]) or "-"
            current = f"v{row['current']}" if row["current"] else "-"
            click.echo(f"{row['name']:<16} {state:<9} current {current:<5} versions {versions}  {row['title']}")


def _current_version(configurations: list[ServiceConfiguration]) -> int | None:
    active = [c.version for c in configurations if c.active]
    return max(active) if active else None


@click.command("createadmin")
@click.option("--email", required=True)
@click.option("--userid", default=None, help="The omegaml userid (default: from the email).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--generate-password", is_flag=True, help="Make a random password and print it once.")
@click.option("--if-none", is_flag=True, help="Do nothing when an admin exists already.")
@db_command
def createadmin(email, userid, password_stdin, generate_password, if_none):
    """Create an admin account, or make an existing user an admin."""
    if if_none and db.session.scalar(select(User.id).where(User.admin.is_(True)).limit(1)) is not None:
        click.echo("an admin exists already: nothing to do")
        return
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.ClickException(f"invalid email {email!r}: {exc}") from None
    if password_stdin and generate_password:
        raise click.ClickException("use either --password-stdin or --generate-password")
    user = User.find(email)
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif generate_password:
        password = secrets.token_urlsafe(12)
    elif user is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    if user is None:
        if userid is not None and not USERID_RE.match(userid):
            raise click.ClickException(f"invalid userid {userid!r} (2-63 lowercase letters, digits, _ . -; no colon)")
        if userid is not None and User.find(userid) is not None:
            raise click.ClickException(f"userid {userid!r} is taken")
        user = User(email=email, userid=userid or User.make_userid(email), email_confirmed_at=utcnow())
        db.session.add(user)
        action = "created"
    else:
        action = "promoted" if not user.admin else "updated"
    user.admin, user.active = True, True
    if password is not None:
        user.set_password(password)
    db.session.commit()
    click.echo(f"admin {user.email} (userid {user.userid}) {action}")
    if generate_password:
        click.echo(f"password: {password}  (shown once: write it down)")


@click.command("createuser")
@click.option("--email", required=True)
@click.option("--userid", default=None, help="The omegaml userid (default: from the email).")
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (else: no password).")
@click.option("--confirmed", is_flag=True, help="Mark the email confirmed and provision the user now.")
@click.option("--service-account", is_flag=True, help="May report usage events for any user (the usage API).")
@db_command
def createuser(email, userid, first_name, last_name, password_stdin, confirmed, service_account):
    """Create a user (e.g. a service account); with --confirmed, their omegaml service is provisioned."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        user = create_user(email, password, first_name, last_name, userid=userid, confirmed=confirmed)
    except AccountError as exc:
        raise click.ClickException(exc.message) from None
    user.service_account = service_account
    if confirmed:
        command_id = provision_and_commit(user)
    else:
        db.session.commit()
        command_id = None
    provisioned = f", sign-up command {command_id}" if command_id else ""
    click.echo(f"user {user.email} created (userid {user.userid}){provisioned}")


@click.command("createapikey")
@click.option("--user", "user_ident", required=True, help="The user's userid or email.")
@click.option("--name", required=True, help="What the key is for.")
@db_command
def createapikey(user_ident, name):
    """Create an API key for a user and print it once (for scripts and service accounts)."""
    user = find_user(user_ident)
    try:
        api_key, key = create_api_key(user, name)
    except AccountError as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"API key {api_key.name!r} for {user.userid} (prefix {api_key.prefix}); shown once:")
    click.echo(f"key: {key}")
    click.echo(f"om cloud login {user.userid} {key}")


COMMANDS = (
    createuser,
    createapikey,
    createservice,
    deleteservice,
    deployservice,
    listservices,
    createadmin,
    cancelcommand,
    retrycommand,
)


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
