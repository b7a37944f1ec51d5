"""What the service API reads and answers, as marshmallow schemas: the views validate and dump with them,
and the OpenAPI document is built from them.

Statuses are strings ("5"), as the omegaml client compares them; ``status_name`` says the same in
words. Secrets in settings, outputs and logs are masked (``app.ops.runner.MASK``).
"""

import marshmallow as ma
from flask import request
from marshmallow import fields, validate

from ..models import FailureReason, Health, Phase, Status
from ..models.types import MAX_ID
from ..ops.params import ParamsError, parse_params
from ..ops.runner import collect_secrets, masked, masked_params
from ..ops.specs import step_spec

PREFIX = "/admin/api/v2/service"
STATUS_VALUES = [str(int(status)) for status in Status]
STATUS_NAMES = [status.name for status in Status]
ORDERINGS = ["created_at", "-created_at"]
DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 20, 100, 999_999_999


LINK = {"type": "string", "description": "this object's path"}


def uri(kind: str, ident: int | None) -> str | None:
    return f"{PREFIX}/{kind}/{ident}/" if ident is not None else None


def caller_is_admin() -> bool:
    user = request.environ.get("omegaops.api_user")
    return bool(user is not None and user.admin)


def status_field(**kwargs):
    return fields.Function(
        lambda obj: str(int(obj.status)),
        metadata={
            "type": "string",
            "enum": STATUS_VALUES,
            "description": '"0" INITIATED, "1" PENDING, "5" COMPLETED, "8" REMOVED, "9" FAILED',
        },
        **kwargs,
    )


def status_name_field():
    return fields.Function(lambda obj: obj.status.name, metadata={"type": "string", "enum": STATUS_NAMES})


class StrictBoolean(fields.Boolean):
    """A JSON boolean: true or false, not "yes", 1 or 0 (which equal True and False in Python)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def flag(**kwargs):
    return StrictBoolean(**kwargs)


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class ErrorSchema(ma.Schema):
    error = fields.String(required=True, metadata={"description": "a machine-readable code, e.g. bad_request"})
    message = fields.String(required=True, metadata={"description": "what is wrong, for people"})
    blocking = fields.String(
        metadata={"description": "409 only: the resource_uri of the command that blocks this one"}
    )


# lists


class MetaSchema(ma.Schema):
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    total_count = fields.Integer(required=True)
    next = fields.String(required=True, allow_none=True)
    previous = fields.String(required=True, allow_none=True)


def list_schema(item: type[ma.Schema], name: str, **options) -> type[ma.Schema]:
    return ma.Schema.from_dict(
        {
            "meta": fields.Nested(MetaSchema, required=True),
            "objects": fields.List(fields.Nested(item, **options), required=True),
        },
        name=name,
    )


class ListArgs(Strict):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))
    order_by = fields.String(load_default="created_at", validate=validate.OneOf(ORDERINGS))
    format = fields.String(validate=validate.OneOf(["json"]), metadata={"description": "tastypie clients send json"})


def status_arg():
    return fields.String(
        validate=validate.OneOf(STATUS_VALUES + STATUS_NAMES),
        metadata={"description": 'a status as a number ("5") or a name (COMPLETED)'},
    )


def parse_status(value: str) -> Status:
    return Status(int(value)) if value.isdigit() else Status[value]


# plans and configurations


class StepSchema(ma.Schema):
    """A step in the spec format: exactly one of ``task`` or ``script``."""

    task = fields.String(metadata={"description": "a python callable, module.function"})
    script = fields.Raw(
        metadata={
            "description": "a path under the scripts directory, or {git, ref, path}, or {url, sha256}",
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"git": {"type": "string"}, "ref": {"type": "string"}, "path": {"type": "string"}},
                },
                {"type": "object", "properties": {"url": {"type": "string"}, "sha256": {"type": "string"}}},
            ],
        }
    )
    name = fields.String()
    language = fields.String(validate=validate.OneOf(["shell", "python"]))
    phases = fields.List(fields.String(validate=validate.OneOf([p.value for p in Phase])))
    params = fields.String(metadata={"description": "k=v,... passed to the step"})
    timeout = fields.Integer(allow_none=True, metadata={"description": "seconds"})
    retries = fields.Integer()


class PlanCreateArgs(ma.Schema):
    """A plan in the YAML spec format (``flask createservice``), as JSON.

    Only documented here: the spec loader (``app.ops.specs.parse_plan``) checks the body, so that
    the API gives the same messages as a spec file does.
    """

    class Meta:
        unknown = ma.INCLUDE

    plan = fields.Raw(
        required=True, metadata={"type": "string", "description": "the plan's name (lowercase, digits, - and _)"}
    )
    title = fields.Raw(allow_none=True, metadata={"type": "string", "nullable": True})
    description = fields.Raw(allow_none=True, metadata={"type": "string", "nullable": True})
    offered = fields.Raw(
        allow_none=True, metadata={"type": "boolean", "description": "in the users' catalog (default false)"}
    )
    one_per_user = fields.Raw(allow_none=True, metadata={"type": "boolean", "description": "default true"})
    defaults = fields.Raw(allow_none=True, metadata={"type": "object", "nullable": True})
    configuration = fields.Raw(
        allow_none=True,
        metadata={
            "type": "object",
            "nullable": True,
            "properties": {"env": {"type": "object", "nullable": True}},
            "additionalProperties": False,
        },
    )
    steps = fields.Raw(
        allow_none=True, metadata={"type": "array", "nullable": True, "items": {"$ref": "#/components/schemas/Step"}}
    )


class PlanUpdateArgs(Strict):
    title = fields.String(validate=validate.Length(max=200))
    description = fields.String()
    offered = flag()
    one_per_user = flag()
    defaults = fields.Dict(keys=fields.String())
    active = flag(metadata={"description": "true reactivates a retired plan"})


class PlanListArgs(ListArgs):
    name = fields.String()
    active = fields.Boolean()
    offered = fields.Boolean()


class PlanDeleteArgs(Strict):
    force = fields.Boolean(load_default=False, metadata={"description": "retire although deployments are live"})


class PlanSchema(ma.Schema):
    id = fields.Integer()
    resource_uri = fields.Function(lambda plan: uri("plan", plan.id), metadata=LINK)
    name = fields.String()
    title = fields.String()
    description = fields.String()
    offered = fields.Boolean()
    one_per_user = fields.Boolean()
    active = fields.Boolean()
    retired_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    defaults = fields.Function(
        lambda plan: plan.defaults if caller_is_admin() else None,
        metadata={"type": "object", "nullable": True, "description": "admins only (null for users)"},
    )
    current_configuration = fields.Function(
        lambda plan: uri("configuration", getattr(plan.current_configuration, "id", None)),
        metadata={"type": "string", "nullable": True},
    )


class ConfigurationCreateArgs(Strict):
    """A new version: ``env`` and ``steps`` in the spec format; an omitted one keeps the newest version's,
    and a masked env value (``********``, as GET shows secrets) keeps the value it hides."""

    plan = fields.String(required=True, metadata={"description": "the plan's name"})
    env = fields.Raw(allow_none=True, metadata={"type": "object", "nullable": True})
    steps = fields.Raw(
        allow_none=True, metadata={"type": "array", "nullable": True, "items": {"$ref": "#/components/schemas/Step"}}
    )


class ConfigurationListArgs(ListArgs):
    plan = fields.String(metadata={"description": "the plan's name"})
    active = fields.Boolean()


class ConfigurationSchema(ma.Schema):
    id = fields.Integer()
    resource_uri = fields.Function(lambda conf: uri("configuration", conf.id), metadata=LINK)
    plan = fields.Function(lambda conf: conf.plan.name, metadata={"type": "string"})
    plan_uri = fields.Function(lambda conf: uri("plan", conf.plan_id), metadata={"type": "string"})
    version = fields.Integer()
    active = fields.Boolean()
    digest = fields.String()
    env = fields.Function(lambda conf: masked_params(conf.env), metadata={"type": "object", "description": "masked"})
    steps = fields.Function(
        lambda conf: [step_spec(step) for step in conf.steps],
        metadata={"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
    )
    created_at = fields.DateTime()


# deployments, commands, tasks


class DeploymentListArgs(ListArgs):
    user__email = fields.String(metadata={"description": "the owner's email"})
    user = fields.String(metadata={"description": "the owner's userid"})
    name = fields.String(metadata={"description": "the plan's name"})
    status = status_arg()
    health = fields.String(validate=validate.OneOf([h.value for h in Health]))


class DeploymentSchema(ma.Schema):
    id = fields.Integer()
    resource_uri = fields.Function(lambda dep: uri("deployment", dep.id), metadata=LINK)
    name = fields.Function(lambda dep: dep.plan.name, metadata={"type": "string", "description": "the plan"})
    plan = fields.Function(lambda dep: uri("plan", dep.plan_id), metadata={"type": "string"})
    user = fields.Function(lambda dep: dep.user.userid, metadata={"type": "string"})
    user_email = fields.Function(lambda dep: dep.user.email, metadata={"type": "string"})
    status = status_field()
    status_name = status_name_field()
    health = fields.String(metadata={"enum": [h.value for h in Health]})
    checked_at = fields.DateTime(allow_none=True)
    text = fields.String()
    params = fields.Function(lambda dep: masked_params(dep.params), metadata={"type": "object"})
    settings = fields.Function(
        lambda dep: masked_params(dep.settings),
        metadata={"type": "object", "description": "written by the tasks; secrets masked"},
    )
    configuration_version = fields.Function(lambda dep: dep.configuration.version, metadata={"type": "integer"})
    commands = fields.Function(
        lambda dep: f"{PREFIX}/command/?deployment={dep.id}", metadata={"type": "string", "description": "a list URI"}
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    removed_at = fields.DateTime(allow_none=True)


class CommandCreateArgs(Strict):
    """What ``om cloud add|update|remove`` sends."""

    offering = fields.String(required=True, metadata={"description": "the plan's name"})
    user = fields.String(metadata={"description": "whose service (userid or email); default: the caller"})
    phase = fields.String(required=True, validate=validate.OneOf([p.value for p in Phase]))
    params = fields.String(
        load_default="", allow_none=True, metadata={"description": 'comma-separated k=v, e.g. "provider=,size=2"'}
    )
    deployment = fields.Integer(
        validate=validate.Range(1, MAX_ID), metadata={"description": "which deployment, when several"}
    )


class CommandListArgs(ListArgs):
    user__email = fields.String()
    user = fields.String(metadata={"description": "the owner's userid"})
    name = fields.String(metadata={"description": "the plan's name"})
    phase = fields.String(validate=validate.OneOf([p.value for p in Phase]))
    status = status_arg()
    deployment = fields.Integer(validate=validate.Range(1, MAX_ID))


class TaskSummarySchema(ma.Schema):
    id = fields.Integer()
    resource_uri = fields.Function(lambda task: uri("task", task.id), metadata=LINK)
    position = fields.Integer()
    attempt = fields.Integer()
    name = fields.String()
    status = status_field()
    status_name = status_name_field()
    exit_code = fields.Integer(allow_none=True)
    failure_reason = fields.String(allow_none=True, metadata={"enum": [r.value for r in FailureReason] + [None]})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class CommandSummarySchema(ma.Schema):
    """A command as lists show it; the detail adds its tasks."""

    id = fields.Integer()
    resource_uri = fields.Function(lambda cmd: uri("command", cmd.id), metadata=LINK)
    status = status_field()
    status_name = status_name_field()
    phase = fields.String(metadata={"enum": [p.value for p in Phase]})
    offering = fields.Function(lambda cmd: cmd.plan.name, metadata={"type": "string", "description": "the plan"})
    user = fields.Function(lambda cmd: cmd.user.userid, metadata={"type": "string"})
    issuer = fields.Function(
        lambda cmd: cmd.issuer.userid if cmd.issuer else None,
        metadata={"type": "string", "nullable": True, "description": "null: the service itself"},
    )
    deployment = fields.Function(lambda cmd: uri("deployment", cmd.deployment_id), metadata={"type": "string"})
    deployment_id = fields.Integer()
    configuration_version = fields.Function(lambda cmd: cmd.configuration.version, metadata={"type": "integer"})
    params = fields.Function(lambda cmd: masked_params(cmd.params), metadata={"type": "object"})
    failure_reason = fields.String(allow_none=True, metadata={"enum": [r.value for r in FailureReason] + [None]})
    failure_detail = fields.String()
    retry_of = fields.Function(
        lambda cmd: uri("command", cmd.retry_of_id), metadata={"type": "string", "nullable": True}
    )
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    cancel_requested_at = fields.DateTime(allow_none=True)


class CommandSchema(CommandSummarySchema):
    tasks = fields.List(fields.Nested(TaskSummarySchema), metadata={"description": "in order of execution"})


class TaskListArgs(ListArgs):
    command = fields.Integer(validate=validate.Range(1, MAX_ID))
    deployment = fields.Integer(validate=validate.Range(1, MAX_ID))
    status = status_arg()


class TaskSchema(TaskSummarySchema):
    command = fields.Function(lambda task: uri("command", task.command_id), metadata={"type": "string"})
    deployment = fields.Function(lambda task: uri("deployment", task.deployment_id), metadata={"type": "string"})
    step = fields.Method("masked_step", metadata={"type": "object", "description": "the step as executed"})
    resolved = fields.String(allow_none=True, metadata={"description": "the git commit or the checked sha256"})
    host = fields.String(allow_none=True)
    heartbeat_at = fields.DateTime(allow_none=True)
    log = fields.Method("masked_log", metadata={"type": "string", "description": "secrets masked"})
    outputs = fields.Method("masked_outputs", metadata={"type": "object", "description": "secrets masked"})

    def secrets(self, task) -> set[str]:
        deployment = task.deployment
        try:
            step_params = parse_params((task.step or {}).get("params") or "")
        except ParamsError:
            step_params = {}
        return collect_secrets(deployment.settings, deployment.params, task.command.params, task.outputs, step_params)

    def masked_step(self, task) -> dict:
        return masked(task.step, self.secrets(task))

    def masked_log(self, task) -> str:
        return masked(task.log, self.secrets(task))

    def masked_outputs(self, task) -> dict:
        return masked(task.outputs, self.secrets(task))


class RetryArgs(Strict):
    body_optional = True
    params = fields.String(allow_none=True)
