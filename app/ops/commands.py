"""Issuing commands: the validation every interface (CLI, API, pages, tasks) shares.

``issue_command`` adds the command (INITIATED) and, for an install, its new deployment to the
session. The caller commits, then enqueues: never the other way round.
"""

from sqlalchemy import select

from ..extensions import db
from ..models import Phase, ServiceCommand, ServiceDeployment, ServicePlan, Status, User
from ..models.status import IN_FLIGHT_STATES, LIVE_DEPLOYMENT_STATES
from .params import ParamsError, parse_params


class CommandRefused(ValueError):
    """A command that cannot be issued; ``code`` maps to the HTTP status the API answers."""

    def __init__(self, code: str, message: str, blocking: ServiceCommand | None = None):
        super().__init__(message)
        self.code, self.message, self.blocking = code, message, blocking


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
    params: str | None = "",
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
        parsed = parse_params(params)
    except ParamsError as exc:
        raise CommandRefused("invalid", str(exc)) from None
    if not plan.offered and not privileged:
        raise CommandRefused("not_found", f"service {plan.name!r} is not offered")

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
        params_raw=(params or "").strip(),
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
