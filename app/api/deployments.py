"""``/admin/api/v2/service/deployment/``, ``command/`` and ``task/``: what runs, and the commands that run it.

``POST command/`` is what ``om cloud add|update|remove`` sends; the client then polls the command's
``Location`` once a second until ``int(status) > 1``. Users see and command their own services;
admins everyone's. Someone else's object is a 404, as if it did not exist.
"""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from ..extensions import db
from ..jobs.provisioning import enqueue_command
from ..models import ServiceCommand, ServiceDeployment, ServicePlan, ServiceTask, Status, User
from ..models.types import valid_id
from ..ops import engine
from ..ops.commands import CommandRefused, ParamsRefused, issue_command
from . import schemas
from .access import guarded, owned_or_404, require_user
from .auth import uses_apikey
from .errors import ApiError
from .idempotency import HEADER_PARAMETER, idempotent, request_key
from .listing import page
from .rest import Blueprint

bp = Blueprint(
    "deployments",
    __name__,
    url_prefix=schemas.PREFIX,
    description="Deployments of plans, the commands issued on them and the tasks that ran them.",
)
DeploymentList = schemas.list_schema(schemas.DeploymentSchema, "DeploymentList")
CommandList = schemas.list_schema(schemas.CommandSummarySchema, "CommandList")
TaskList = schemas.list_schema(schemas.TaskSummarySchema, "TaskList")
LOCATION = {"Location": {"description": "the command's resource_uri", "schema": {"type": "string"}}}
REFUSED_STATUS = {"not_found": 404, "invalid": 400, "conflict": 409}
ERROR_CODES = {400: "bad_request", 404: "not_found", 409: "conflict"}
CONFLICT = "the deployment is busy (a command in flight) or the plan allows one deployment per user"


def refused(exc: CommandRefused, status: int | None = None) -> ApiError:
    """The API error for a refused command; a conflict names the command in the way."""
    extra = {"blocking": schemas.uri("command", exc.blocking.id)} if exc.blocking is not None else {}
    if exc.parameter is not None:
        extra["parameter"] = exc.parameter  # the plan parameter the message names
    status = status or REFUSED_STATUS[exc.code]
    return ApiError(status, ERROR_CODES[status], exc.message, **extra)


def located(command: ServiceCommand, status: int = 201):
    return command, status, {"Location": schemas.uri("command", command.id)}


def by_email(email: str):
    return select(User.id).where(func.lower(User.email) == email.strip().lower()).scalar_subquery()


def by_userid(userid: str):
    return select(User.id).where(User.userid == userid).scalar_subquery()


def by_plan_name(name: str):
    return select(ServicePlan.id).where(ServicePlan.name == name).scalar_subquery()


def owner_filters(query, model, caller: User, args: dict):
    """Users see their own; ``user__email``, ``user`` (userid) and ``name`` (plan) narrow the list."""
    if not caller.admin:
        query = query.where(model.user_id == caller.id)
    if "user__email" in args:
        query = query.where(model.user_id == by_email(args["user__email"]))
    if "user" in args:
        query = query.where(model.user_id == by_userid(args["user"]))
    if "name" in args:
        query = query.where(model.plan_id == by_plan_name(args["name"]))
    if "status" in args:
        query = query.where(model.status == schemas.parse_status(args["status"]))
    return query


# deployments


@bp.route("/deployment/", methods=["GET"], strict_slashes=False)
@guarded(query=True)
@bp.arguments(schemas.DeploymentListArgs, location="query", as_kwargs=True)
@bp.response(200, DeploymentList)
def deployment_list(**args):
    """Deployments: the caller's own, or everyone's for admins; filters by owner, plan, status, health."""
    query = owner_filters(select(ServiceDeployment), ServiceDeployment, require_user(), args)
    if "health" in args:
        query = query.where(ServiceDeployment.health == args["health"])
    options = [
        joinedload(ServiceDeployment.user),
        joinedload(ServiceDeployment.plan),
        joinedload(ServiceDeployment.configuration),
    ]
    return page(query, args, ServiceDeployment.created_at, ServiceDeployment.id, options)


@bp.route("/deployment/<int:deployment_id>/", methods=["GET"], strict_slashes=False)
@guarded()
@bp.response(200, schemas.DeploymentSchema)
def deployment_detail(deployment_id):
    """One deployment: the caller's own, or anyone's for admins."""
    return owned_or_404(ServiceDeployment, deployment_id, "deployment", require_user())


# commands


@bp.route("/command/", methods=["GET"], strict_slashes=False)
@guarded(query=True)
@bp.arguments(schemas.CommandListArgs, location="query", as_kwargs=True)
@bp.response(200, CommandList)
def command_list(**args):
    """Commands: the caller's own, or everyone's for admins; filters by owner, plan, phase, status, deployment."""
    query = owner_filters(select(ServiceCommand), ServiceCommand, require_user(), args)
    if "phase" in args:
        query = query.where(ServiceCommand.phase == args["phase"])
    if "deployment" in args:
        query = query.where(ServiceCommand.deployment_id == args["deployment"])
    options = [
        joinedload(ServiceCommand.user),
        joinedload(ServiceCommand.issuer),
        joinedload(ServiceCommand.plan),
        joinedload(ServiceCommand.configuration),
    ]
    return page(query, args, ServiceCommand.created_at, ServiceCommand.id, options)


def command_owner(caller: User, ident: str | None) -> User:
    """Whose service the command is for: the caller, or (admins) anyone by userid or email."""
    if ident is None or ident in (caller.userid, caller.email):
        return caller
    if not caller.admin:
        raise ApiError(403, "forbidden", "users issue commands for their own services only")
    owner = db.session.scalar(select(User).where(User.userid == ident))
    owner = owner or db.session.scalar(select(User).where(func.lower(User.email) == ident.strip().lower()))
    if owner is None:
        raise ApiError(404, "not_found", f"no user {ident!r}")
    return owner


@bp.route("/command/", methods=["POST"], strict_slashes=False)
@guarded()
@idempotent
@bp.arguments(schemas.CommandCreateArgs)
@bp.response(201, schemas.CommandSchema, headers=LOCATION)
@bp.alt_response(409, schema=schemas.ErrorSchema, description=CONFLICT)
@bp.doc(parameters=[HEADER_PARAMETER])
def command_create(body):
    """Issue a command: install, update (scaling is an update of ``size``), uninstall or check.

    ``params`` is the client's comma-separated ``k=v`` string. A worker executes the command; poll
    the ``Location`` until ``int(status) > 1``: "5" is success.
    """
    caller = require_user()
    owner = command_owner(caller, body.get("user"))
    key = request_key()
    # the command's own unique key makes two racing first requests one command
    scoped_key = f"api:{caller.id}:{key}" if key else None
    try:
        command = issue_command(
            plan=body["offering"],
            user=owner,
            phase=body["phase"],
            params=body.get("params") or "",
            issuer=caller,
            deployment_id=body.get("deployment"),
            idempotency_key=scoped_key,
            privileged=caller.admin,
        )
        db.session.commit()
    except CommandRefused as exc:
        raise refused(exc) from None
    except IntegrityError:
        db.session.rollback()
        command = scoped_key and db.session.scalar(
            select(ServiceCommand).where(ServiceCommand.idempotency_key == scoped_key)
        )
        if not command:
            raise ApiError(409, "conflict", "another command got in the way: try again") from None
    if command.status == Status.INITIATED:
        enqueue_command(command.id)  # Redis down: the dispatcher enqueues it later
    return located(command)


def visible_command(command_id: int) -> ServiceCommand:
    return owned_or_404(ServiceCommand, command_id, "command", require_user())


@bp.route("/command/<int:command_id>/", methods=["GET"], strict_slashes=False)
@guarded()
@bp.response(200, schemas.CommandSchema, description="the command with its tasks (session-authenticated reads)")
@bp.alt_response(
    201,
    schema=schemas.CommandSchema,
    headers=LOCATION,
    description="the same, to requests authenticated with ApiKey: the omegaml 0.18 client needs 201 + Location",
    success=True,
)
def command_detail(command_id):
    """One command with its tasks; poll it until ``int(status) > 1`` ("5": completed)."""
    caller = require_user()
    query = (
        select(ServiceCommand)
        .where(ServiceCommand.id == command_id)
        .options(
            selectinload(ServiceCommand.tasks),
            joinedload(ServiceCommand.plan),
            joinedload(ServiceCommand.configuration),
            joinedload(ServiceCommand.user),
            joinedload(ServiceCommand.issuer),
        )
    )
    command = db.session.scalar(query) if valid_id(command_id) else None
    if command is None or (not caller.admin and command.user_id != caller.id):
        raise ApiError(404, "not_found", f"no command {command_id}")
    if uses_apikey():
        # Client quirk, on purpose: omegaml 0.18.0 (`om cloud add|update|remove`, omegaml/client/cli/cloud.py
        # `_request_service_api`) reads the Location header of every answer it polls and crashes on a 200
        # (its `url` is only set for a 201). So ApiKey callers -- the client's scheme -- get 201 with
        # Location pointing at this same resource; see shared/CLIENT-CONTRACT.md, "Service commands".
        return located(command)
    return command


@bp.route("/command/<int:command_id>/cancel/", methods=["POST"], strict_slashes=False)
@guarded()
@bp.response(202, schemas.CommandSchema, description="cancelled, or asked to stop (the runner stops it)")
@bp.alt_response(409, schema=schemas.ErrorSchema, description="the command is finished already")
def command_cancel(command_id):
    """Cancel a command: one not started yet fails at once; a running one is stopped at its runner's next tick."""
    command = visible_command(command_id)
    try:
        engine.request_cancel(command)
    except CommandRefused as exc:
        raise refused(exc, 409) from None
    db.session.refresh(command)
    return command


@bp.route("/command/<int:command_id>/retry/", methods=["POST"], strict_slashes=False)
@guarded()
@bp.arguments(schemas.RetryArgs, required=False)
@bp.response(201, schemas.CommandSchema, headers=LOCATION, description="the new command")
@bp.alt_response(400, schema=schemas.ErrorSchema, description="params the plan's parameters do not accept")
@bp.alt_response(409, schema=schemas.ErrorSchema, description="not FAILED, or the deployment is busy or removed")
def command_retry(body, command_id):
    """Issue a FAILED command again, as a new command (``retry_of`` links them).

    ``params`` (optional) go over the failed command's, e.g. to correct the value that made it fail.
    """
    caller = require_user()
    command = visible_command(command_id)
    try:
        new = engine.retry(command, issuer=caller, params=body.get("params"))
        db.session.commit()
    except ParamsRefused as exc:
        raise refused(exc, 400) from None
    except CommandRefused as exc:
        raise refused(exc, 409) from None
    enqueue_command(new.id)
    return located(new)


# tasks


@bp.route("/task/", methods=["GET"], strict_slashes=False)
@guarded(query=True)
@bp.arguments(schemas.TaskListArgs, location="query", as_kwargs=True)
@bp.response(200, TaskList)
def task_list(**args):
    """Tasks (without their logs): filter by ``command``, ``deployment`` and ``status``."""
    caller = require_user()
    query = select(ServiceTask)
    if not caller.admin:
        query = query.where(
            ServiceTask.command_id.in_(select(ServiceCommand.id).where(ServiceCommand.user_id == caller.id))
        )
    for name in ("command", "deployment"):
        if name in args:
            query = query.where(getattr(ServiceTask, f"{name}_id") == args[name])
    if "status" in args:
        query = query.where(ServiceTask.status == schemas.parse_status(args["status"]))
    return page(query, args, ServiceTask.created_at, ServiceTask.id)


@bp.route("/task/<int:task_id>/", methods=["GET"], strict_slashes=False)
@guarded()
@bp.response(200, schemas.TaskSchema)
def task_detail(task_id):
    """One task with its log and outputs, secrets masked."""
    caller = require_user()
    query = (
        select(ServiceTask)
        .where(ServiceTask.id == task_id)
        .options(joinedload(ServiceTask.command), joinedload(ServiceTask.deployment))
    )
    task = db.session.scalar(query) if valid_id(task_id) else None
    if task is None or (not caller.admin and task.command.user_id != caller.id):
        raise ApiError(404, "not_found", f"no task {task_id}")
    return task
