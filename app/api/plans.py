"""``/admin/api/v2/service/plan/`` and ``configuration/``: the offerings, managed by admins, read by users.

Writes take the YAML spec format of ``flask createservice`` (as JSON) and give its validation
messages. One difference: ``${VAR}`` in an env value is not read from the server's environment
(an API caller must not read the server's secrets that way); only ``${VAR:-default}`` and the
service's own fallbacks (CLUSTER_ID) expand.
"""

from flask import Response, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import ServiceConfiguration, ServicePlan
from ..models.types import utcnow
from ..ops.plans import PlanInUse, live_deployments, remove_plan
from ..ops.specs import SpecError, apply_specs, keep_masked, parse_plan, spec_fallbacks, step_spec
from . import schemas
from .access import get_or_404, guarded, require_user
from .errors import ApiError
from .idempotency import HEADER_PARAMETER, idempotent
from .listing import page
from .parsing import bad_request
from .rest import Blueprint

bp = Blueprint(
    "plans",
    __name__,
    url_prefix=schemas.PREFIX,
    description="Service plans (offerings) and their versioned configurations.",
)
PlanList = schemas.list_schema(schemas.PlanSchema, "PlanList")
ConfigurationList = schemas.list_schema(schemas.ConfigurationSchema, "ConfigurationList")
CREATED = {"Location": {"description": "the new resource", "schema": {"type": "string"}}}


def located(obj, kind: str, status: int = 201):
    return obj, status, {"Location": schemas.uri(kind, obj.id)}


def parse_spec(body: dict):
    """The plan spec in ``body``, validated as a spec file is (a 400 with the same messages)."""
    config = current_app.config
    try:
        return parse_plan(body, "request body", config["SCRIPTS_DIR"], spec_fallbacks(config), environ={})
    except SpecError as exc:
        raise bad_request(str(exc)) from None


def apply_and_commit(spec, conflict: str):
    """Write the spec; a racing writer's unique name or version number is a 409, not a 500."""
    try:
        (result,) = apply_specs([spec])
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ApiError(409, "conflict", conflict) from None
    return result


# plans


def visible_plan(plan_id: int) -> ServicePlan:
    """Users see the offered, active plans; admins every plan."""
    caller = require_user()
    plan = get_or_404(ServicePlan, plan_id, "plan")
    if not caller.admin and not (plan.offered and plan.active):
        raise ApiError(404, "not_found", f"no plan {plan_id}")
    return plan


@bp.route("/plan/", methods=["GET"], strict_slashes=False)
@guarded(query=True)
@bp.arguments(schemas.PlanListArgs, location="query", as_kwargs=True)
@bp.response(200, PlanList)
def plan_list(**args):
    """The catalog: offered, active plans for users; every plan, filterable, for admins."""
    caller = require_user()
    query = select(ServicePlan)
    if not caller.admin:
        query = query.where(ServicePlan.offered.is_(True), ServicePlan.active.is_(True))
    if "name" in args:
        query = query.where(ServicePlan.name == args["name"])
    for flag in ("active", "offered"):
        if flag in args:
            query = query.where(getattr(ServicePlan, flag).is_(args[flag]))
    return page(query, args, ServicePlan.created_at, ServicePlan.id)


@bp.route("/plan/", methods=["POST"], strict_slashes=False)
@guarded(admin=True)
@idempotent
@bp.arguments(schemas.PlanCreateArgs)
@bp.response(201, schemas.PlanSchema, headers=CREATED)
@bp.alt_response(409, schema=schemas.ErrorSchema, description="a plan of this name exists")
@bp.doc(parameters=[HEADER_PARAMETER])
def plan_create(body):
    """Create a plan and its first configuration from a spec (admins)."""
    spec = parse_spec(body)
    if ServicePlan.by_name(spec.name) is not None:
        raise ApiError(409, "conflict", f"a plan named {spec.name!r} exists already: change it with PATCH")
    apply_and_commit(spec, f"a plan named {spec.name!r} was created at the same time")
    return located(ServicePlan.by_name(spec.name), "plan")


@bp.route("/plan/<int:plan_id>/", methods=["GET"], strict_slashes=False)
@guarded()
@bp.response(200, schemas.PlanSchema)
def plan_detail(plan_id):
    """One plan: offered, active ones for users; any for admins."""
    return visible_plan(plan_id)


@bp.route("/plan/<int:plan_id>/", methods=["PATCH"], strict_slashes=False)
@guarded(admin=True)
@bp.arguments(schemas.PlanUpdateArgs)
@bp.response(200, schemas.PlanSchema)
@bp.alt_response(409, schema=schemas.ErrorSchema, description="active=false while deployments are live")
def plan_update(body, plan_id):
    """Change a plan's fields (admins); ``active: true`` reactivates a retired plan."""
    plan = get_or_404(ServicePlan, plan_id, "plan")
    if "title" in body and not body["title"].strip():
        raise bad_request("title: must not be empty")
    if "active" in body and body["active"] != plan.active:
        if not body["active"] and live_deployments(plan):
            raise ApiError(
                409, "conflict", f"plan {plan.name!r} has live deployments: retire it with DELETE ?force=true"
            )
        plan.retired_at = None if body["active"] else utcnow()
    for field, value in body.items():
        setattr(plan, field, value)
    if not plan.active:
        plan.offered = False  # a retired plan is not in the catalog
    db.session.commit()
    return plan


@bp.route("/plan/<int:plan_id>/", methods=["DELETE"], strict_slashes=False)
@guarded(admin=True, query=True)
@bp.arguments(schemas.PlanDeleteArgs, location="query", as_kwargs=True)
@bp.response(200, schemas.PlanSchema, description="retired: the plan has history, which is kept")
@bp.alt_response(204, description="deleted: the plan was never used")
@bp.alt_response(409, schema=schemas.ErrorSchema, description="deployments are live (use force=true)")
def plan_delete(plan_id, force):
    """Remove a plan (admins): deleted if never used, else retired; refused while deployed unless forced."""
    plan = get_or_404(ServicePlan, plan_id, "plan")
    try:
        action, _ = remove_plan(plan, force)
    except PlanInUse as exc:
        raise ApiError(409, "conflict", f"{exc}, or send force=true to retire the plan") from None
    db.session.commit()
    return Response(status=204) if action == "deleted" else plan


# configurations


@bp.route("/configuration/", methods=["GET"], strict_slashes=False)
@guarded(admin=True, query=True)
@bp.arguments(schemas.ConfigurationListArgs, location="query", as_kwargs=True)
@bp.response(200, ConfigurationList)
def configuration_list(**args):
    """Every configuration version (admins); filter by ``plan`` name and ``active``."""
    query = select(ServiceConfiguration).join(ServiceConfiguration.plan)
    if "plan" in args:
        query = query.where(ServicePlan.name == args["plan"])
    if "active" in args:
        query = query.where(ServiceConfiguration.active.is_(args["active"]))
    return page(query, args, ServiceConfiguration.created_at, ServiceConfiguration.id)


@bp.route("/configuration/", methods=["POST"], strict_slashes=False)
@guarded(admin=True)
@idempotent
@bp.arguments(schemas.ConfigurationCreateArgs)
@bp.response(201, schemas.ConfigurationSchema, headers=CREATED, description="a new version")
@bp.alt_response(200, schema=schemas.ConfigurationSchema, description="unchanged: the newest version is the same")
@bp.alt_response(409, schema=schemas.ErrorSchema, description="the plan is retired, or a write raced this one")
@bp.doc(parameters=[HEADER_PARAMETER])
def configuration_create(body):
    """A new configuration version of a plan (admins): env and steps in the spec format."""
    plan = ServicePlan.by_name(body["plan"])
    if plan is None:
        raise ApiError(404, "not_found", f"no service plan named {body['plan']!r}")
    if not plan.active:
        raise ApiError(409, "conflict", f"plan {plan.name!r} is retired: reactivate it (PATCH active=true) first")
    newest = plan.current_configuration
    env = body["env"] if "env" in body or newest is None else newest.env
    steps = body["steps"] if "steps" in body or newest is None else [step_spec(step) for step in newest.steps]
    spec = parse_spec({"plan": plan.name, "configuration": {"env": env}, "steps": steps})
    keep_masked(spec, newest)  # GET shows secrets masked: a masked value sent back keeps the value it hides
    result = apply_and_commit(spec, f"another configuration of {plan.name!r} was written at the same time: try again")
    changed = result.action != "unchanged"
    configuration = db.session.scalar(
        select(ServiceConfiguration).where(
            ServiceConfiguration.plan_id == plan.id, ServiceConfiguration.version == result.version
        )
    )
    return located(configuration, "configuration", 201 if changed else 200)


@bp.route("/configuration/<int:configuration_id>/", methods=["GET"], strict_slashes=False)
@guarded(admin=True)
@bp.response(200, schemas.ConfigurationSchema)
def configuration_detail(configuration_id):
    """One configuration version with its env (secrets masked) and steps, in the spec format (admins)."""
    return get_or_404(ServiceConfiguration, configuration_id, "configuration")


@bp.route("/configuration/<int:configuration_id>/", methods=["DELETE"], strict_slashes=False)
@guarded(admin=True)
@bp.response(200, schemas.ConfigurationSchema, description="retired: new installs use the newest active version")
def configuration_delete(configuration_id):
    """Retire a configuration version (admins); the deployments it installed keep it."""
    configuration = get_or_404(ServiceConfiguration, configuration_id, "configuration")
    configuration.active = False
    db.session.commit()
    return configuration
