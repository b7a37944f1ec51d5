"""Issuing commands: the validation every interface (CLI, API, pages, tasks) shares.

``issue_command`` adds the command (INITIATED) and, for an install, its new deployment to the
session. The caller commits, then enqueues: never the other way round.
"""

from sqlalchemy import select

from ..extensions import db
from ..models import Phase, ServiceCommand, ServiceConfiguration, ServiceDeployment, ServicePlan, Status, User
from ..models.status import IN_FLIGHT_STATES, LIVE_DEPLOYMENT_STATES
from .parameters import Parameter, ParameterError, declared, validate_params
from .params import ParamsError, format_params, parse_params


class CommandRefused(ValueError):
    """A command that cannot be issued; ``code`` maps to the HTTP status the API answers."""

    def __init__(self, code: str, message: str, blocking: ServiceCommand | None = None, parameter: str | None = None):
        super().__init__(message)
        self.code, self.message, self.blocking = code, message, blocking
        self.parameter = parameter  # the plan parameter refused, when one is


class ParamsRefused(CommandRefused):
    """A command refused for its params (their syntax, or a value the plan's parameters do not accept): a 400."""

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__("invalid", message, parameter=parameter)


def plan_parameters(plan: ServicePlan, configuration: ServiceConfiguration | None = None) -> dict[str, Parameter]:
    """What ``plan``'s commands accept, by name: its declaration, else what its steps default (see parameters.py)."""
    if plan.parameters is not None:
        return declared(plan.parameters)
    return declared(None, step_defaults(configuration if configuration is not None else plan.current_configuration))


def step_defaults(configuration: ServiceConfiguration | None) -> dict[str, str]:
    """The params a configuration's steps default (``params: size=1``): what a spec of the original format names."""
    defaults: dict[str, str] = {}
    for step in configuration.steps if configuration is not None else ():
        defaults.update(parse_params(step.params))  # validated when the spec was loaded
    return defaults


def checked_params(plan: ServicePlan, params: dict[str, str], phase: str) -> dict[str, str]:
    """``params`` validated against ``plan``'s parameters (with its defaults on install), or ``CommandRefused``."""
    try:
        return validate_params(plan_parameters(plan), params, install=phase == Phase.INSTALL)
    except ParameterError as exc:
        raise ParamsRefused(exc.message, parameter=exc.name) from None


def find_live_deployments(user: User, plan: ServicePlan) -> list[ServiceDeployment]:
    """The user's deployments of ``plan`` that are not REMOVED, oldest first."""
    return list(
        db.session.scalars(
            select(ServiceDeployment)
            .where(
                ServiceDeployment.user_id == user.id,
                ServiceDeployment.plan_id == plan.id,
                ServiceDeployment.status.in_(LIVE_DEPLOYMENT_STATES),
            )
            .order_by(ServiceDeployment.id)
        )
    )


def in_flight_command(deployment: ServiceDeployment) -> ServiceCommand | None:
    """The command currently queued or running on ``deployment``, if any."""
    return db.session.scalar(
        select(ServiceCommand)
        .where(ServiceCommand.deployment_id == deployment.id, ServiceCommand.status.in_(IN_FLIGHT_STATES))
        .limit(1)
    )


def issue_command(
    *,
    plan: ServicePlan | str,
    user: User,
    phase: str,
    params: str | dict[str, str] | None = "",
    issuer: User | None = None,
    deployment_id: int | None = None,
    idempotency_key: str | None = None,
    privileged: bool = False,
) -> ServiceCommand:
    """Validate and add a new INITIATED command; raise ``CommandRefused`` with the reason.

    ``privileged`` (operators, admins, the service's own tasks) may deploy internal plans;
    users may only order plans offered in the catalog.
    """
    if idempotency_key:
        existing = db.session.scalar(select(ServiceCommand).where(ServiceCommand.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    if isinstance(plan, str):
        name = plan
        plan = ServicePlan.by_name(name)
        if plan is None:
            raise CommandRefused("not_found", f"no service plan named {name!r}")
    if not user.active:
        raise CommandRefused("invalid", f"user {user.userid!r} is not active")
    try:
        phase = Phase(phase).value
    except ValueError:
        allowed = ", ".join(p.value for p in Phase)
        raise CommandRefused("invalid", f"unknown phase {phase!r} (allowed: {allowed})") from None
    try:
        parsed = dict(params) if isinstance(params, dict) else parse_params(params)
    except ParamsError as exc:
        raise ParamsRefused(str(exc)) from None
    if not plan.offered and not privileged:
        raise CommandRefused("not_found", f"service {plan.name!r} is not offered")
    parsed = checked_params(plan, parsed, phase)

    if phase == Phase.INSTALL:
        deployment = _new_deployment(plan, user, parsed, deployment_id)
        configuration = deployment.configuration
    else:
        deployment = _existing_deployment(plan, user, deployment_id)
        blocking = in_flight_command(deployment)
        if blocking is not None:
            raise CommandRefused(
                "conflict",
                f"command {blocking.id} ({blocking.phase}) is still {blocking.status.name} "
                f"on deployment {deployment.id}",
                blocking=blocking,
            )
        # an update moves the deployment to the plan's newest configuration; the others use what installed it
        configuration = plan.current_configuration if phase == Phase.UPDATE else deployment.configuration
        if configuration is None:
            raise CommandRefused("invalid", f"service {plan.name!r} has no active configuration")
        if phase == Phase.CHECK and not configuration.steps_for(Phase.CHECK):
            raise CommandRefused("invalid", f"service {plan.name!r} has no check steps")

    command = ServiceCommand(
        issuer=issuer,
        user=user,
        plan=plan,
        deployment=deployment,
        configuration=configuration,
        phase=phase,
        params=parsed,
        params_raw=format_params(parsed) if isinstance(params, dict) else (params or "").strip(),
        idempotency_key=idempotency_key or None,
    )
    db.session.add(command)
    db.session.flush()
    return command


def _new_deployment(plan, user, params, deployment_id) -> ServiceDeployment:
    if deployment_id is not None:
        raise CommandRefused("invalid", "install creates a new deployment: do not name one")
    if not plan.active:
        raise CommandRefused("invalid", f"service {plan.name!r} is retired and takes no new deployments")
    configuration = plan.current_configuration
    if configuration is None:
        raise CommandRefused("invalid", f"service {plan.name!r} has no active configuration")
    if plan.one_per_user:
        existing = find_live_deployments(user, plan)
        failed = reusable_failed_install(existing)
        if failed is not None:
            return reinstall(failed, configuration, params)
        if existing:
            deployment = existing[0]
            raise CommandRefused(
                "conflict",
                f"user {user.userid!r} already has deployment {deployment.id} of {plan.name!r} "
                f"({deployment.status.name}); update or uninstall it instead",
                blocking=in_flight_command(deployment),
            )
    deployment = ServiceDeployment(user=user, plan=plan, configuration=configuration, params=params)
    db.session.add(deployment)
    return deployment


def failed_install(deployment: ServiceDeployment) -> bool:
    """A FAILED deployment that was never installed: nothing of it runs, so it does not count as one the user has.

    Installing the plan again reuses it (``reinstall``): its history stays in one place, and whatever the
    failed attempt left behind (its settings, a database half made) is the new attempt's to finish.
    """
    if deployment.status != Status.FAILED:
        return False
    installed = db.session.scalar(
        select(ServiceCommand.id)
        .where(
            ServiceCommand.deployment_id == deployment.id,
            ServiceCommand.phase == Phase.INSTALL,
            ServiceCommand.status == Status.COMPLETED,
        )
        .limit(1)
    )
    return installed is None


def reusable_failed_install(live: list[ServiceDeployment]) -> ServiceDeployment | None:
    """The deployment a new install of a one-per-user plan reuses: the user's only one, if it failed at its
    install and nothing is in flight on it (``live`` are the user's live deployments of the plan)."""
    if len(live) == 1 and failed_install(live[0]) and in_flight_command(live[0]) is None:
        return live[0]
    return None


def reinstall(deployment: ServiceDeployment, configuration: ServiceConfiguration, params: dict) -> ServiceDeployment:
    """A failed install's deployment, made ready for a new install with ``params`` (which replace its old ones)."""
    deployment.configuration = configuration
    deployment.params = params  # it stays FAILED until the install starts, as a retry's does
    return deployment


def _existing_deployment(plan, user, deployment_id) -> ServiceDeployment:
    if deployment_id is not None:
        deployment = db.session.get(ServiceDeployment, deployment_id)
        if deployment is None or deployment.user_id != user.id or deployment.plan_id != plan.id:
            raise CommandRefused("not_found", f"no deployment {deployment_id} of {plan.name!r} for {user.userid!r}")
        if deployment.status == Status.REMOVED:
            raise CommandRefused("invalid", f"deployment {deployment_id} is removed")
        return deployment
    live = find_live_deployments(user, plan)
    if not live:
        raise CommandRefused("not_found", f"user {user.userid!r} has no deployment of {plan.name!r}")
    if len(live) > 1:
        ids = ", ".join(str(d.id) for d in live)
        raise CommandRefused(
            "invalid", f"user {user.userid!r} has several deployments of {plan.name!r} ({ids}): name one"
        )
    return live[0]
