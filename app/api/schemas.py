"""What the service API reads and answers, as marshmallow schemas: the views validate and dump with them,
and the OpenAPI document is built from them.

Statuses are strings ("5"), as the omegaml client compares them; ``status_name`` says the same in
words. Secrets in settings, outputs and logs are masked (``app.ops.runner.MASK``).
"""

import re

import marshmallow as ma
from flask import request, url_for
from marshmallow import fields, validate

from .. import accounts
from ..models import FailureReason, Health, Phase, Status
from ..models.types import MAX_ID
from ..ops import parameters as spec_parameters
from ..ops import specs
from ..ops.params import KEY_RE, ParamsError, parse_params
from ..ops.runner import MASK, collect_secrets, masked, masked_params
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


class WholeNumber(fields.Integer):
    """An integer; as text (a query parameter) ASCII digits only: ``int()`` also reads "٤" and "1_000"."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and not re.fullmatch(r"[-+]?[0-9]{1,20}", value):
            raise self.make_error("invalid", input=value)
        return super()._deserialize(value, attr, data, **kwargs)


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class ErrorSchema(ma.Schema):
    error = fields.String(required=True, metadata={"description": "a machine-readable code, e.g. bad_request"})
    message = fields.String(required=True, metadata={"description": "what is wrong, for people"})
    blocking = fields.String(
        metadata={"description": "409 only: the resource_uri of the command that blocks this one"}
    )
    parameter = fields.String(
        allow_none=True,
        metadata={
            "description": "a refused command: the plan parameter the refusal names (null: the params as a whole)"
        },
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
    limit = WholeNumber(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT))
    offset = WholeNumber(load_default=0, validate=validate.Range(0, MAX_OFFSET))
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


# the spec format, as the loader reads it (``app.ops.specs``, ``app.ops.parameters``): each level lists exactly
# the keys the loader accepts (its PLAN_KEYS, STEP_KEYS, METRIC_KEYS, PARAMETER_KEYS), with the types, enums
# and bounds it checks, from its constants. What a key means is said here; a key the loader gains shows up
# with no description until it is given one (tests/test_openapi_coverage.py says which).
PHASES = [phase.value for phase in Phase]
NOT_A_COLLECTION = {"not": {"anyOf": [{"type": "object"}, {"type": "array"}]}}
DECIMAL = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
    "description": 'a decimal of 0 or more, as a number or as text ("0.05")',
}


def integer(minimum: int, maximum: int, **extra) -> dict:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, **extra}


def spec_level(keys, described: dict, required=()) -> dict:
    """The JSON schema of one level of a spec: the loader's ``keys``, described (in ``described``'s order)."""
    ordered = [key for key in described if key in keys] + sorted(set(keys) - set(described))
    schema = {"type": "object", "properties": {key: described.get(key, {}) for key in ordered}}
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    return schema


STEP = spec_level(
    specs.STEP_KEYS,
    {
        "task": {
            "type": "string",
            "pattern": specs.DOTTED_RE.pattern,
            "description": "a python callable, module.function",
        },
        "script": {
            "description": "a path under the scripts directory, or {git, ref, path}, or {url, sha256}",
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": specs.MAX_LOCATION},
                {
                    "type": "object",
                    "properties": {
                        "git": {"type": "string", "minLength": 1, "maxLength": specs.MAX_LOCATION},
                        "ref": {"type": "string", "minLength": 1, "maxLength": specs.MAX_REF},
                        "path": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": specs.MAX_LOCATION,
                            "description": "relative, inside the repository",
                        },
                    },
                    "required": ["git", "ref", "path"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "url": {
                            "type": "string",
                            "maxLength": specs.MAX_LOCATION,
                            "description": "http(s):// or file://",
                        },
                        # the loader compares it in lower case
                        "sha256": {"type": "string", "pattern": specs.SHA256_RE.pattern.replace("a-f", "a-fA-F")},
                    },
                    "required": ["url", "sha256"],
                    "additionalProperties": False,
                },
            ],
        },
        "name": {
            "type": "string",
            "nullable": True,
            "minLength": 1,
            "description": "default: the function's or the file's name",
        },
        "language": {
            "type": "string",
            "nullable": True,
            "enum": [*sorted(set(specs.LANGUAGES.values())), None],
            "description": "scripts only; default: from the file's suffix",
        },
        "phases": {
            "description": "when the step runs (default: install)",
            "oneOf": [
                {"type": "string", "enum": PHASES},
                {"type": "array", "items": {"type": "string", "enum": PHASES}, "minItems": 1, "uniqueItems": True},
            ],
        },
        "params": {"type": "string", "nullable": True, "description": "k=v,... passed to the step"},
        "timeout": integer(1, specs.MAX_TIMEOUT, nullable=True, description="seconds"),
        "retries": integer(0, specs.MAX_RETRIES, nullable=True, description="default 0"),
    },
)
# exactly one of task or script
STEP["oneOf"] = [{"required": ["task"]}, {"required": ["script"]}]

METRIC = spec_level(
    specs.METRIC_KEYS,
    {
        "name": {"type": "string", "minLength": 1, "description": "unique in the plan"},
        "kind": {"type": "string", "minLength": 1, "description": "the usage events' kind it counts"},
        "action": {"type": "string", "nullable": True, "description": "the events' action; null: any"},
        "aggregation": {"type": "string", "enum": list(specs.AGGREGATIONS), "default": "count"},
        "field": {"type": "string", "nullable": True, "description": "the data field summed or counted"},
        "unit": {"type": "string", "nullable": True},
        "unit_price": DECIMAL,
        "included": DECIMAL,
        "tiers": {
            "type": "array",
            "nullable": True,
            "description": "graduated prices, ascending; only the last may be open (up_to: null)",
            "items": {
                "type": "object",
                "properties": {"up_to": {**DECIMAL, "nullable": True}, "unit_price": DECIMAL},
                "required": ["unit_price"],
                "additionalProperties": False,
            },
        },
    },
    required=("name", "kind"),
)

PARAMETER = spec_level(
    spec_parameters.PARAMETER_KEYS,
    {
        "name": {"type": "string", "pattern": KEY_RE.pattern},
        "type": {"type": "string", "enum": list(spec_parameters.TYPES), "default": "string"},
        "description": {"type": "string", "nullable": True},
        "default": {
            **NOT_A_COLLECTION,
            "description": "what an install gets when it does not give the parameter (a value of its type)",
        },
        "required": {"type": "boolean", "description": "an install must give it"},
        "secret": {"type": "boolean", "description": "masked wherever params are shown, and in task logs"},
        "minimum": integer(-spec_parameters.MAX_INTEGER, spec_parameters.MAX_INTEGER, nullable=True),
        "maximum": integer(-spec_parameters.MAX_INTEGER, spec_parameters.MAX_INTEGER, nullable=True),
        "pattern": {"type": "string", "nullable": True, "description": "strings: a regular expression to match"},
        "max_length": integer(1, spec_parameters.MAX_VALUE_LENGTH, nullable=True),
        "choices": {"type": "array", "nullable": True, "items": {"type": "string"}, "minItems": 1},
    },
    required=("name",),
)

PLAN = spec_level(
    specs.PLAN_KEYS,
    {
        "plan": {
            "type": "string",
            "pattern": specs.PLAN_NAME_RE.pattern,
            "description": "the plan's name (lowercase, digits, - and _)",
        },
        "title": {"type": "string", "nullable": True, "maxLength": specs.MAX_TITLE},
        "description": {"type": "string", "nullable": True},
        "offered": {"type": "boolean", "description": "in the users' catalog (default false)"},
        "one_per_user": {"type": "boolean", "description": "default true"},
        "base_fee": integer(0, specs.MAX_BASE_FEE, description="minor units (cents) a month, prorated by day"),
        "defaults": {
            "type": "object",
            "nullable": True,
            "additionalProperties": {},
            "description": "merged under the deployments' settings in client configurations",
        },
        "configuration": {
            "type": "object",
            "nullable": True,
            "properties": {
                "env": {
                    "type": "object",
                    "nullable": True,
                    "additionalProperties": NOT_A_COLLECTION,
                    "description": "variable names to single values; ${VAR:-default} expands",
                }
            },
            "additionalProperties": False,
        },
        "steps": {"type": "array", "nullable": True, "items": {"$ref": "#/components/schemas/Step"}},
        "metrics": {"type": "array", "nullable": True, "items": {"$ref": "#/components/schemas/Metric"}},
        "parameters": {
            "type": "array",
            "nullable": True,
            "items": {"$ref": "#/components/schemas/Parameter"},
            "description": "what the plan's commands accept; absent or null: its steps' params defaults",
        },
    },
    required=("plan",),
)
# the component schemas the document gets (``app.api.rest.init_api``)
SPEC_COMPONENTS = {"Step": STEP, "Metric": METRIC, "Parameter": PARAMETER}


class SpecValue(fields.Raw):
    """Any JSON value, null too, handed to the spec loader as it is: it refuses what it does not take."""

    def _validate_missing(self, value):
        if value is not None:
            super()._validate_missing(value)


class SpecArgs(ma.Schema):
    class Meta:
        unknown = ma.INCLUDE  # the loader refuses unknown keys, with a spec file's message


# A plan in the YAML spec format (``flask createservice``), as JSON. Only ``plan`` is checked here (that it
# is given); the loader checks the rest, so that the API gives a spec file's messages. The document says
# ``additionalProperties: false`` (``app.api.rest.init_api``): the loader refuses other keys.
PlanCreateArgs = SpecArgs.from_dict(
    {key: SpecValue(required=key in PLAN["required"], metadata=value) for key, value in PLAN["properties"].items()},
    name="PlanCreateArgs",
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
    base_fee = fields.Integer(metadata={"description": "minor units (cents) a month, prorated by day"})
    parameters = fields.Function(
        lambda plan: shown_parameters(plan.parameters),
        metadata={
            "type": "array",
            "nullable": True,
            "items": {"$ref": "#/components/schemas/Parameter"},
            "description": "what its commands accept (a secret's default masked); null: the params its steps "
            "default, as free text",
        },
    )


def shown_parameters(declared: list[dict] | None) -> list[dict] | None:
    """A plan's parameters as the API shows them: a secret's default masked."""
    if declared is None:
        return None
    return [
        {**item, "default": MASK} if item.get("secret") and item.get("default") not in (None, "") else item
        for item in declared
    ]


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
    """``POST command/<id>/retry/``: an optional body; ``params`` changes what the failed command gave."""

    body_optional = True  # no body at all: the failed command's params again (app/api/rest.py StrictParser)

    params = fields.String(
        allow_none=True,
        metadata={
            "description": 'comma-separated k=v over the failed command\'s params, e.g. "size=2"; absent or '
            "null: the same params"
        },
    )


# accounts: /admin/api/v2/auth/... (the rules are app.accounts'; these say the shape)

AUTH_PREFIX = "/admin/api/v2/auth"


def profile_property(name: str) -> dict:
    """A profile field as the document describes it, from ``accounts.PROFILE_FIELDS``."""
    rule = accounts.PROFILE_FIELDS[name]
    words = ["trimmed"]
    if rule.multi_line:
        words.append("line breaks kept")
    else:
        words.append("one line")
    words.append("no control characters")
    if name == "country":
        words.append("a two-letter ISO 3166 code, or empty")
    return {
        "maxLength": rule.max_length,
        **({"minLength": 1} if rule.required else {}),
        "description": ", ".join(words),
    }


class UserSchema(ma.Schema):
    """A user as the API shows it: never the password hash, never keys."""

    id = fields.Integer()
    userid = fields.String()
    email = fields.String()
    first_name = fields.String()
    last_name = fields.String()
    company = fields.String()
    billing_address = fields.String()
    country = fields.String()
    tax_id = fields.String()
    active = fields.Boolean()
    email_confirmed = fields.Function(lambda user: user.email_confirmed_at is not None, metadata={"type": "boolean"})
    date_joined = fields.DateTime(attribute="created_at")
    resource_uri = fields.Function(lambda user: user_uri(user), metadata=LINK)


def user_uri(user) -> str:
    return url_for("api_auth.user_detail", user_id=user.id)


class SignupArgs(Strict):
    """A new account: the password's rules are the sign-up page's (a minimum length, not the email)."""

    email = fields.String(required=True, metadata={"format": "email"})
    first_name = fields.String(required=True, metadata=profile_property("first_name"))
    last_name = fields.String(required=True, metadata=profile_property("last_name"))
    password = fields.String(required=True, metadata={"format": "password"})


class ResetArgs(Strict):
    """Either ``{email}`` (mail a reset link) or ``{token, password}`` (set the password)."""

    email = fields.String(metadata={"format": "email", "description": "ask for a link"})
    token = fields.String(metadata={"description": "the token of the mailed link"})
    password = fields.String(metadata={"format": "password", "description": "the new password, with token"})

    @ma.validates_schema
    def one_of_the_two(self, data, **kwargs):
        if "token" in data or "password" in data:
            if "email" in data:
                raise ma.ValidationError("give either email, or token and password", "email")
            for name in ("token", "password"):
                if name not in data:
                    raise ma.ValidationError("Missing data for required field.", name)
        elif "email" not in data:
            raise ma.ValidationError("Missing data for required field.", "email")


class ResetRequestedSchema(ma.Schema):
    message = fields.String()
    resource_uri = fields.String(metadata=LINK)


class UserListArgs(Strict):
    limit = WholeNumber(load_default=DEFAULT_LIMIT, validate=validate.Range(1, MAX_LIMIT))
    offset = WholeNumber(load_default=0, validate=validate.Range(0, MAX_OFFSET))
    email = fields.String(metadata={"description": "admins: the user with this email (any case)"})
    format = fields.String(validate=validate.OneOf(["json"]), metadata={"description": "tastypie clients send json"})


# what the user resource shows but PATCH may not change
READ_ONLY_USER_FIELDS = ("id", "userid", "email", "active", "admin", "email_confirmed", "date_joined", "resource_uri")


class ProfileArgs(Strict):
    @ma.pre_load
    def refuse_read_only(self, data, **kwargs):
        for name in (*READ_ONLY_USER_FIELDS, "password"):
            if isinstance(data, dict) and name in data:
                raise ma.ValidationError("is read-only", name)
        return data


UserPatchArgs = ProfileArgs.from_dict(
    {name: fields.String(metadata=profile_property(name)) for name in accounts.PROFILE_FIELDS},
    name="UserPatchArgs",
)


# the omegaml client's configuration: /api/v1/config/ (CLIENT-CONTRACT.md)

MAX_QUALIFIER = 200


class ConfigArgs(ma.Schema):
    """What the client sends; it may send more, which is ignored (the client contract)."""

    class Meta:
        unknown = ma.EXCLUDE

    qualifier = fields.String(
        metadata={"maxLength": MAX_QUALIFIER, "description": "the environment (the Qualifier header wins)"}
    )
    view = fields.String(metadata={"description": "1, true or yes: in-cluster host names (and extra keys)"})
    user = fields.String(metadata={"description": "admins: another user's configuration (others get a 403)"})


QUALIFIER_HEADER = {
    "in": "header",
    "name": "Qualifier",
    "required": False,
    "description": "the environment, `default` when unset, `<group>:<qualifier>` for a group's; wins over the "
    "query's qualifier",
    "schema": {"type": "string", "maxLength": MAX_QUALIFIER},
}


class ConfigObjectSchema(ma.Schema):
    data = fields.Dict(
        keys=fields.String(),
        metadata={"description": "OMEGA_* settings (UPPERCASE keys), flat for the qualifier"},
    )
    resource_uri = fields.String(metadata=LINK)


ConfigSchema = ma.Schema.from_dict(
    {
        "meta": fields.Nested(MetaSchema, required=True),
        "objects": fields.List(fields.Nested(ConfigObjectSchema), required=True),
    },
    name="ClientConfig",
)


# usage events: /admin/api/v2/usage/event/

MAX_EVENTS = 10_000


def event_list(value) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EVENTS:
        raise ma.ValidationError(f"a list of 1 to {MAX_EVENTS} events")


class UsageBatchArgs(Strict):
    # each event is checked on its own (app.usage.events): a bad one is rejected in the answer, not a 400
    events = fields.Raw(
        required=True,
        validate=event_list,
        metadata={
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_EVENTS,
            "items": {
                "description": "{start_dt, end_dt, user, kind, action, id, quantity, plan, client_ip, data}, "
                "as app/usage/events.py reads it"
            },
        },
    )


class UsageResultSchema(ma.Schema):
    index = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"enum": ["accepted", "duplicate", "rejected"]})
    id = fields.String(metadata={"description": "accepted or duplicate: the event's id"})
    late = fields.Boolean(metadata={"description": "recorded in the open period, not its own"})
    reason = fields.String(metadata={"description": "rejected: why"})


class UsageBatchSchema(ma.Schema):
    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    rejected = fields.Integer(required=True)
    results = fields.List(fields.Nested(UsageResultSchema), required=True, metadata={"description": "in order"})
