"""What a user can do with a plan or a deployment: the one answer the pages render and their handlers enforce.

``issue_command`` stays the last word: it refuses whatever cannot run. These functions give its
answer before anyone asks, so a page shows only the actions that can succeed, and a hand-made POST
for one that cannot gets the same refusal (a ``CommandRefused``), never a 500.

A plan takes ``size`` (and shows a Scale form) when it declares an integer ``size`` parameter
(app/ops/parameters.py). A plan of the original format, which declares none, takes it when its
configuration names it (a step defaults it: ``params: size=1``), and a deployment also when its steps
report a size in its settings (``services/scripts/worker/worker.py`` writes ``{"worker": {"size": N}}``).
"""

from dataclasses import dataclass

from sqlalchemy import or_

from ..models import ServiceCommand, ServiceDeployment, ServicePlan, Status, User
from .commands import CommandRefused, find_live_deployments, reusable_failed_install, step_defaults
from .params import format_params
from .runner import masked_params

SIZE = "size"


@dataclass(frozen=True)
class InstallOffer:
    """What the catalog shows for one plan: an install form, or why not (and the deployment it has)."""

    plan: ServicePlan
    refusal: CommandRefused | None = None
    installed: ServiceDeployment | None = None  # the live deployment of a one-per-user plan the user has
    hint: str = ""  # the params the plan's spec names, as an example ("" when it names none)
    failed: ServiceDeployment | None = None  # the user's failed install, which installing again reuses

    @property
    def can_install(self) -> bool:
        return self.refusal is None


def listed():
    """The plans whose deployments and commands users see: offered and retired ones, never internal ones (``signup``).

    A clause on ``ServicePlan``, for the queries of the pages.
    """
    return or_(ServicePlan.offered.is_(True), ServicePlan.active.is_(False))


def reported_size(deployment: ServiceDeployment) -> int | None:
    """The size the deployment's steps reported in its settings (top level, or one output down), if any."""
    settings = deployment.settings or {}
    for found in (settings, *(value for value in settings.values() if isinstance(value, dict))):
        size = found.get(SIZE)
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    return None


def takes_size(plan: ServicePlan, deployment: ServiceDeployment | None = None) -> bool:
    """Whether ``size`` means something to ``plan`` (and ``deployment``): only then are Size and Scale shown."""
    if plan.parameters is not None:  # declared: a Scale form only where the plan declares an integer size
        return any(item["name"] == SIZE and item.get("type") == "integer" for item in plan.parameters)
    if SIZE in step_defaults(plan.current_configuration):
        return True
    return deployment is not None and reported_size(deployment) is not None


def current_size(deployment: ServiceDeployment) -> int | None:
    """The size the deployment was last given, else the one its steps reported."""
    size = str((deployment.params or {}).get(SIZE, ""))
    return int(size) if size.isdigit() else reported_size(deployment)


def install_offer(plan: ServicePlan, user: User, live: list[ServiceDeployment] | None = None) -> InstallOffer:
    """Whether ``user`` can install ``plan`` now; ``live`` are their live deployments when the caller has them."""
    configuration = plan.current_configuration
    hint = format_params(masked_params(step_defaults(configuration)))
    if not plan.offered:
        return InstallOffer(plan, CommandRefused("not_found", f"service {plan.name!r} is not offered"))
    if not plan.active:
        return InstallOffer(
            plan, CommandRefused("invalid", f"service {plan.name!r} is retired and takes no new deployments")
        )
    if configuration is None:
        return InstallOffer(plan, CommandRefused("invalid", f"service {plan.name!r} has no active configuration"))
    if plan.one_per_user:
        if live is None:
            live = find_live_deployments(user, plan)
        mine = [d for d in live if d.plan_id == plan.id and d.status != Status.REMOVED]
        existing = mine[0] if mine else None
        if (failed := reusable_failed_install(mine)) is not None:
            return InstallOffer(plan, hint=hint, failed=failed)  # installing again reuses it
        if existing is not None:
            refusal = CommandRefused(
                "conflict",
                f"you already have deployment {existing.id} of {plan.name!r} ({existing.status.name}); "
                "update or uninstall it instead",
            )
            return InstallOffer(plan, refusal, installed=existing, hint=hint)
    return InstallOffer(plan, hint=hint)


def command_refusal(plan: ServicePlan, user: User) -> CommandRefused | None:
    """Why ``user`` cannot issue commands on deployments of ``plan``, or None (admins may, as the console does)."""
    if plan.offered or user.admin:
        return None
    if not plan.active:
        return CommandRefused(
            "not_found", f"service {plan.name!r} is retired: it takes no more commands (an operator can uninstall it)"
        )
    return CommandRefused("not_found", f"service {plan.name!r} is run by omegaops itself and takes no commands")


def deployment_refusal(deployment: ServiceDeployment, user: User, action: str) -> CommandRefused | None:
    """Why ``user`` cannot ``update``, ``scale`` or ``uninstall`` ``deployment``, or None.

    A command still in flight is left to ``issue_command``: it refuses with the command to wait for.
    """
    if deployment.status == Status.REMOVED:
        return CommandRefused("not_found", f"deployment {deployment.id} is removed")
    refusal = command_refusal(deployment.plan, user)
    if refusal is None and action == "scale" and not takes_size(deployment.plan, deployment):
        refusal = CommandRefused(
            "invalid", f"service {deployment.plan.name!r} takes no size: update it with the params it takes"
        )
    return refusal


def retry_refusal(command: ServiceCommand, user: User) -> CommandRefused | None:
    """Why ``user`` cannot retry ``command``, or None (what ``engine.retry`` would refuse, said beforehand)."""
    if command.status != Status.FAILED:
        return CommandRefused(
            "invalid", f"only a FAILED command can be retried; command {command.id} is {command.status.name}"
        )
    if command.deployment.status == Status.REMOVED:
        return CommandRefused("invalid", f"deployment {command.deployment_id} is removed: install it anew")
    return command_refusal(command.plan, user)


def cancel_refusal(command: ServiceCommand, user: User) -> CommandRefused | None:
    """Why ``user`` cannot cancel ``command``, or None."""
    if command.status.is_final:
        return CommandRefused("invalid", f"command {command.id} is {command.status.name} already")
    if command.cancel_requested_at is not None:
        return CommandRefused("invalid", f"command {command.id} is being cancelled already")
    return command_refusal(command.plan, user)
