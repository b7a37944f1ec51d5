"""``GET /api/v1/config/``: the omegaml client's configuration, exactly as CLIENT-CONTRACT.md describes.

The hottest endpoint of the service: every ``import omegaml`` and every runtime task calls it. It
costs one query to authenticate (a key is marked used at most once a minute) and one to load the
deployment with its plan.
"""

import functools

import marshmallow as ma
from flask import jsonify, request
from sqlalchemy import bindparam, select

from ..extensions import db
from ..models import Group, ServiceDeployment, ServicePlan, Status, User
from ..ops.engine import deep_merge
from . import schemas
from .auth import require_user
from .errors import ApiError
from .rest import Blueprint

bp = Blueprint(
    "api_config",
    __name__,
    url_prefix="/api/v1",
    description="The omegaml client's configuration: where its storage and broker are.",
)

# a deployment being updated (PENDING) still serves the settings it completed with
SERVING = (Status.COMPLETED, Status.PENDING)


def client_settings(values: dict, internal: bool) -> dict:
    """The UPPERCASE settings the client applies; ``internal`` overrides merged in for in-cluster callers."""
    data = {key: value for key, value in values.items() if key.isupper()}
    if internal and isinstance(values.get("internal"), dict):
        data = deep_merge(data, {key: value for key, value in values["internal"].items() if key.isupper()})
    return data


@functools.cache
def _settings_statement():
    """Built once per process (this is the hottest query): the settings and plan defaults to answer with."""
    omegaml = select(ServicePlan.id).where(ServicePlan.name == "omegaml").scalar_subquery()
    # lead with the user: a user has a handful of deployments. SQLite without statistics would
    # rather walk the plan_id index over every omegaml deployment; `plan_id + 0` keeps it off that index
    return (
        select(ServiceDeployment.settings, ServicePlan.defaults)
        .join(ServicePlan, ServiceDeployment.plan_id == ServicePlan.id)
        .where(
            ServiceDeployment.user_id == bindparam("user_id"),
            ServiceDeployment.plan_id + 0 == omegaml,
            ServiceDeployment.status.in_(SERVING),
        )
        .order_by(ServiceDeployment.id.desc())
        .limit(1)
    )


def omegaml_settings(user: User) -> tuple[dict, dict] | None:
    """The settings of the user's serving omegaml deployment and its plan's defaults, or None."""
    row = db.session.execute(_settings_statement(), {"user_id": user.id}).first()
    return None if row is None else (row.settings or {}, row.defaults or {})


def resolve_target(caller: User, qualifier: str, other: str | None) -> tuple[User, str]:
    """Whose settings and which qualifier: ``?user=`` for admins, ``group:qualifier`` for group members."""
    target = caller
    if other and other != caller.userid:
        if not caller.admin:
            raise ApiError(403, "forbidden", "only admins may ask for another user's configuration")
        target = User.find(other)
        if target is None:
            raise ApiError(404, "not_found", f"no user {other!r}")
    if ":" in qualifier:
        group_name, qualifier = qualifier.split(":", 1)
        group = db.session.scalar(select(Group).where(Group.name == group_name))
        members = group.members if group is not None else []
        if group is None or group.account is None or (target not in members and not caller.admin):
            raise ApiError(404, "not_found", f"no group {group_name!r} that you are a member of")
        target = group.account
    return target, qualifier or "default"


@bp.route("/config/", methods=["GET"], strict_slashes=False)
@bp.arguments(schemas.ConfigArgs, location="query", as_kwargs=True, unknown=ma.EXCLUDE)
@bp.response(200, schemas.ConfigSchema)
@bp.alt_response(403, schema=schemas.ErrorSchema, description="user= for someone else, and not an admin")
@bp.alt_response(
    404,
    schema=schemas.ErrorSchema,
    description="no such user or group, no omegaml service (yet), or an unknown qualifier",
)
@bp.doc(parameters=[schemas.QUALIFIER_HEADER])
def config(qualifier=None, view="", user=None):
    """Answer the client's configuration for the caller's omegaml service and qualifier."""
    # reads only (and at most a key's last_used, which stands alone): on a server database, no BEGIN and
    # ROLLBACK round trips (SQLite has none to save, and switching its isolation level costs more)
    if db.engine.dialect.name != "sqlite" and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    caller = require_user()
    header = request.headers.get("Qualifier")
    for given in (header, qualifier):
        if given and len(given) > schemas.MAX_QUALIFIER:
            raise ApiError(400, "bad_request", f"qualifier is too long (at most {schemas.MAX_QUALIFIER} characters)")
    requested = header or qualifier or "default"
    target, qualifier = resolve_target(caller, requested, user)
    found = omegaml_settings(target)
    if found is None:
        raise ApiError(404, "not_found", f"{target.userid} has no omegaml service (yet)")
    settings, defaults = found
    values = settings.get(qualifier)
    if not isinstance(values, dict) or not any(key.startswith("OMEGA_") for key in values):
        raise ApiError(404, "not_found", f"unknown qualifier {qualifier!r}")
    internal = view.lower() in ("1", "true", "yes")
    data = deep_merge(client_settings(defaults, internal), client_settings(values, internal))
    data.setdefault("OMEGA_USERID", target.userid)
    data["OMEGA_QUALIFIER"] = qualifier
    return jsonify(
        meta={"limit": 1, "offset": 0, "total_count": 1, "next": None, "previous": None},
        objects=[{"data": data, "resource_uri": f"/api/v1/config/{requested}/"}],
    )
