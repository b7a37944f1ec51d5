"""Service specs: the YAML files ``flask createservice --specs`` loads, in the original service's format.

A file is a list of plans::

    - plan: omegaml
      title: omega|ml             # optional plan fields
      description: ...
      offered: true               # in the users' catalog (default false: internal)
      one_per_user: true          # default true
      defaults: {OMEGA_...: ...}  # merged under deployment settings in client configs
      configuration:
        env:
          CLUSTER_ID: ${CLUSTER_ID}
      steps:
        - task: app.ops.tasks.deploy_user_service     # a python callable
          params: ""
        - script: omegaml/check.sh                     # pre-installed, under SCRIPTS_DIR
          phases: [check]
          timeout: 60
          retries: 1
        - script: {git: https://..., ref: main, path: deploy/install.sh}
        - script: {url: https://.../install.py, sha256: <64 hex>}

Loading validates everything first and writes nothing when any file is invalid; the messages name
the file, the plan, the step and the field.
"""

import hashlib
import importlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import func, select

from ..billing.pricing import PriceError, decimal, parse_tiers
from ..extensions import db
from ..models import Phase, ServiceConfiguration, ServicePlan, ServiceStep, StepKind
from ..models.types import utcnow
from .parameters import parse_declaration
from .params import ParamsError, parse_params
from .runner import MASK, masked_params
from .yamlsafe import load_yaml

PLAN_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DOTTED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
LANGUAGES = {".sh": "shell", ".bash": "shell", ".py": "python"}
PLAN_KEYS = {
    "plan",
    "title",
    "description",
    "offered",
    "one_per_user",
    "defaults",
    "configuration",
    "steps",
    "metrics",
    "base_fee",
    "parameters",
}
METRIC_KEYS = {"name", "kind", "action", "aggregation", "field", "unit", "unit_price", "included", "tiers"}
AGGREGATIONS = ("count", "sum", "max", "unique", "duration")
STEP_KEYS = {"task", "script", "name", "language", "params", "phases", "timeout", "retries"}
MAX_TIMEOUT = 24 * 3600
# the column sizes of ServicePlan.title, ServiceStep.ref and ServiceStep.target / repository
MAX_TITLE = 200
MAX_REF = 200
MAX_LOCATION = 1000
MAX_RETRIES = 10
MAX_BASE_FEE = 2**31 - 1  # minor units a month; service_plans.base_fee is an INTEGER on PostgreSQL


class SpecError(ValueError):
    """An invalid spec; the message names the file, plan, step and field."""


@dataclass
class StepSpec:
    kind: str
    target: str
    name: str
    language: str | None = None
    repository: str | None = None
    ref: str | None = None
    sha256: str | None = None
    phases: list[str] = field(default_factory=lambda: [Phase.INSTALL.value])
    params: str = ""
    timeout: int | None = None
    retries: int = 0


@dataclass
class PlanSpec:
    name: str
    fields: dict  # the plan fields the spec sets; absent ones keep their current value
    env: dict[str, str]
    steps: list[StepSpec]
    metrics: list[dict] | None = None  # None: the spec says nothing of metrics (they stay as they are)

    @property
    def digest(self) -> str:
        """A fingerprint of what the configuration runs: equal specs make no new version."""
        payload = {"env": self.env, "steps": [asdict(step) for step in self.steps]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class SpecResult:
    plan: str
    action: str  # created | updated | unchanged | reactivated
    version: int

    def __str__(self):
        return f"{self.plan}: {self.action} (configuration v{self.version})"


class _Where:
    """Builds the location prefix of an error message."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, message: str, plan: str | None = None, item: int | None = None):
        where = self.source
        if plan is not None:
            where += f": plan {plan!r}"
        elif item is not None:
            where += f": item {item}"
        raise SpecError(f"{where}: {message}")


def expand_env(value: str, fallbacks: dict[str, str], environ=None) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` from the environment, then from ``fallbacks``."""
    environ = os.environ if environ is None else environ

    def replace(match):
        name, default = match.group(1), match.group(2)
        if environ.get(name) not in (None, ""):
            return environ[name]
        if default is not None:
            return default
        if fallbacks.get(name) not in (None, ""):
            return str(fallbacks[name])
        raise KeyError(name)

    return VAR_RE.sub(replace, value)


def parse_specs(text: str, source: str, scripts_dir: Path, fallbacks: dict[str, str], environ=None) -> list[PlanSpec]:
    """Parse and validate the YAML ``text`` of one spec file; raise ``SpecError`` on the first problem."""
    where = _Where(source)
    try:
        data = load_yaml(text)  # bounded: no stack overflow from nesting, no alias bomb
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        where.fail(f"not valid YAML{at}: {problem}")
    if data is None:
        data = []
    if isinstance(data, dict):
        data = [data]  # a file holding a single plan
    if not isinstance(data, list):
        where.fail("must be a list of plans (`- plan: name` items)")
    plans = []
    for index, item in enumerate(data, start=1):
        plans.append(_parse_plan(item, index, where, scripts_dir, fallbacks, environ))
    names = [plan.name for plan in plans]
    for name in names:
        if names.count(name) > 1:
            where.fail("is given more than once", plan=name)
    return plans


def parse_plan(item, source: str, scripts_dir: Path, fallbacks: dict[str, str], environ=None) -> PlanSpec:
    """Validate one plan given as data (the API's request bodies), with the messages a spec file gets."""
    return _parse_plan(item, 1, _Where(source), scripts_dir, fallbacks, environ)


def _parse_plan(item, index, where, scripts_dir, fallbacks, environ) -> PlanSpec:
    if not isinstance(item, dict):
        where.fail("must be a mapping with at least `plan:`", item=index)
    name = item.get("plan")
    if not isinstance(name, str) or not PLAN_NAME_RE.match(name):
        where.fail(
            f"plan: {name!r} is not a valid plan name (lowercase letters, digits, - and _, starting with a letter)",
            item=index,
        )
    unknown = unknown_keys(item, PLAN_KEYS)
    if unknown:
        where.fail(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(PLAN_KEYS))})", plan=name)

    fields = {}
    for key in ("title", "description"):
        if key in item:
            value = item[key]
            if value is not None and not isinstance(value, str):
                where.fail(f"{key}: must be text", plan=name)
            if key == "title" and value and len(value) > MAX_TITLE:
                where.fail(f"title: is longer than {MAX_TITLE} characters", plan=name)
            fields[key] = value or ""
    for key in ("offered", "one_per_user"):
        if key in item:
            if not isinstance(item[key], bool):
                where.fail(f"{key}: must be true or false, got {item[key]!r}", plan=name)
            fields[key] = item[key]
    if "base_fee" in item:
        fee = item["base_fee"]
        if isinstance(fee, bool) or not isinstance(fee, int) or not 0 <= fee <= MAX_BASE_FEE:
            where.fail(
                f"base_fee: a whole number of minor units (cents) a month, from 0 to {MAX_BASE_FEE}, got {fee!r}",
                plan=name,
            )
        fields["base_fee"] = fee
    if "defaults" in item:
        defaults = item["defaults"] or {}
        if not isinstance(defaults, dict) or not all(isinstance(k, str) for k in defaults):
            where.fail("defaults: must be a mapping of setting names to values", plan=name)
        fields["defaults"] = defaults

    if "parameters" in item:
        fields["parameters"] = parse_declaration(item["parameters"], lambda message: where.fail(message, plan=name))

    configuration = item.get("configuration") or {}
    if not isinstance(configuration, dict):
        where.fail("configuration: must be a mapping with `env:`", plan=name)
    unknown = unknown_keys(configuration, {"env"})
    if unknown:
        where.fail(f"configuration.{unknown[0]}: unknown field (allowed: env)", plan=name)
    raw_env = configuration.get("env") or {}
    if not isinstance(raw_env, dict):
        where.fail("configuration.env: must be a mapping of variable names to values", plan=name)
    env = {}
    for key, value in raw_env.items():
        if not isinstance(key, str) or not ENV_KEY_RE.match(key):
            where.fail(f"configuration.env: {key!r} is not a valid variable name", plan=name)
        if isinstance(value, (dict, list)):
            where.fail(f"configuration.env.{key}: must be a single value, not a list or mapping", plan=name)
        value = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        try:
            env[key] = expand_env(value, fallbacks, environ)
        except KeyError as exc:
            var = exc.args[0]
            where.fail(
                f"configuration.env.{key}: environment variable {var} is not set "
                f"(set it, or write ${{{var}:-default}})",
                plan=name,
            )

    raw_steps = item.get("steps", [])
    if raw_steps is None:
        raw_steps = []
    if not isinstance(raw_steps, list):
        where.fail("steps: must be a list of steps", plan=name)
    steps = [_parse_step(raw, number, name, where, scripts_dir) for number, raw in enumerate(raw_steps, start=1)]
    metrics = _parse_metrics(item["metrics"], name, where) if "metrics" in item else None
    return PlanSpec(name=name, fields=fields, env=env, steps=steps, metrics=metrics)


def _parse_metrics(raw, plan, where) -> list[dict]:
    """``metrics:`` -- what the plan measures from usage events (see app/models/usage.py)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        where.fail("metrics: must be a list of metrics", plan=plan)
    metrics, names = [], set()
    for number, metric in enumerate(raw, start=1):

        def fail(message, number=number):
            where.fail(f"metrics[{number}]: {message}", plan=plan)

        if not isinstance(metric, dict):
            fail("must be a mapping with name, kind and aggregation")
        unknown = unknown_keys(metric, METRIC_KEYS)
        if unknown:
            fail(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(METRIC_KEYS))})")
        for key, limit in (("name", 63), ("kind", 50)):
            if not isinstance(metric.get(key), str) or not metric[key].strip() or len(metric[key]) > limit:
                fail(f"{key}: a text of 1 to {limit} characters is required")
        for key, limit in (("action", 100), ("field", 100), ("unit", 20)):
            if metric.get(key) is not None and (not isinstance(metric[key], str) or len(metric[key]) > limit):
                fail(f"{key}: a text of at most {limit} characters")
        aggregation = metric.get("aggregation", "count")
        if aggregation not in AGGREGATIONS:
            fail(f"aggregation: {aggregation!r} is not one of {', '.join(AGGREGATIONS)}")
        if aggregation == "unique" and not metric.get("field"):
            fail("field: a unique count needs the data field it counts")
        if metric["name"] in names:
            fail(f"name: {metric['name']!r} is given twice")
        names.add(metric["name"])
        prices = {}
        try:
            for key in ("unit_price", "included"):
                prices[key] = format(decimal(metric.get(key, 0), key).normalize(), "f")
            parse_tiers(metric.get("tiers"))
        except PriceError as exc:
            fail(str(exc))
        metrics.append(
            {
                **prices,
                "tiers": metric.get("tiers") or [],
                "name": metric["name"].strip(),
                "kind": metric["kind"].strip(),
                "action": metric.get("action") or None,
                "aggregation": aggregation,
                "field": metric.get("field") or None,
                "unit": metric.get("unit") or "",
            }
        )
    return metrics


def apply_metrics(plan: ServicePlan, metrics: list[dict]) -> bool:
    """Create or update the plan's metrics by name; metrics not listed stay (their history refers to them)."""
    from ..models import Metric

    changed = False
    existing = {m.name: m for m in db.session.scalars(select(Metric).where(Metric.plan_id == plan.id))}
    for spec in metrics:
        metric = existing.get(spec["name"])
        if metric is None:
            db.session.add(Metric(plan_id=plan.id, **spec))
            changed = True
            continue
        for key, value in spec.items():
            if getattr(metric, key) != value:
                setattr(metric, key, value)
                changed = True
    return changed


def _parse_step(raw, number, plan, where, scripts_dir) -> StepSpec:
    def fail(message):
        where.fail(f"step {number}: {message}", plan=plan)

    if not isinstance(raw, dict):
        fail("must be a mapping with `task:` or `script:`")
    unknown = unknown_keys(raw, STEP_KEYS)
    if unknown:
        fail(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(STEP_KEYS))})")
    if ("task" in raw) == ("script" in raw):
        fail("needs exactly one of `task:` (a python callable) or `script:`")

    language = raw.get("language")
    if language is not None and language not in ("shell", "python"):
        fail(f"language: must be shell or python, got {language!r}")
    if "task" in raw:
        if language is not None:
            fail("language: applies to scripts only, not to a task")
        step = StepSpec(kind=StepKind.TASK.value, target=_check_task(raw["task"], fail), name="")
    else:
        step = _parse_script(raw["script"], language, scripts_dir, fail)

    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        fail("name: must be non-empty text")
    step.name = (name or default_step_name(step)).strip()[:200]

    params = raw.get("params", "")
    params = "" if params is None else params
    if not isinstance(params, str):
        fail(f"params: must be a k=v,... string, got {params!r}")
    try:
        parse_params(params)
    except ParamsError as exc:
        fail(str(exc))
    step.params = params.strip()

    if "phases" in raw:
        phases = raw["phases"]
        if isinstance(phases, str):
            phases = [phases]
        valid = [phase.value for phase in Phase]
        if not isinstance(phases, list) or not phases:
            fail(f"phases: must be a non-empty list of {', '.join(valid)}")
        for phase in phases:
            if phase not in valid:
                fail(f"phases: {phase!r} is not a phase (allowed: {', '.join(valid)})")
        if len(set(phases)) != len(phases):
            fail("phases: lists a phase twice")
        step.phases = list(phases)

    if raw.get("timeout") is not None:
        timeout = raw["timeout"]
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT:
            fail(f"timeout: must be a whole number of seconds between 1 and {MAX_TIMEOUT}, got {timeout!r}")
        step.timeout = timeout
    if raw.get("retries") is not None:
        retries = raw["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
            fail(f"retries: must be a whole number between 0 and {MAX_RETRIES}, got {retries!r}")
        step.retries = retries
    return step


def step_spec(step: ServiceStep) -> dict:
    """A stored step in the spec format it was written in (what ``parse_plan`` reads back)."""
    if step.kind == StepKind.TASK:
        spec = {"task": step.target}
    elif step.kind == StepKind.GIT:
        spec = {"script": {"git": step.repository, "ref": step.ref, "path": step.target}}
    elif step.kind == StepKind.URL:
        spec = {"script": {"url": step.target, "sha256": step.sha256}}
    else:
        spec = {"script": step.target}
    if step.language:
        spec["language"] = step.language
    spec.update(name=step.name, phases=list(step.phases), params=step.params, retries=step.retries)
    if step.timeout is not None:
        spec["timeout"] = step.timeout
    return spec


def unknown_keys(mapping: dict, allowed) -> list[str]:
    """The keys of ``mapping`` that are not allowed, as text (YAML keys may be numbers or null)."""
    return sorted(str(key) for key in mapping if key not in allowed)


def default_step_name(step: StepSpec) -> str:
    """A task is named after its function, a script after its file."""
    if step.kind == StepKind.TASK:
        return step.target.rsplit(".", 1)[-1]
    return step.target.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or step.kind


def _check_task(path, fail) -> str:
    if not isinstance(path, str) or not DOTTED_RE.match(path):
        fail(f"task: {path!r} is not a dotted path to a python callable (module.function)")
    module_name, attr = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"task: module {module_name!r} cannot be imported ({exc})")
    if not callable(getattr(module, attr, None)):
        fail(f"task: {module_name!r} has no callable {attr!r}")
    return path


def _parse_script(script, language, scripts_dir: Path, fail) -> StepSpec:
    if isinstance(script, str):
        if not script.strip():
            fail("script: is empty")
        if len(script) > MAX_LOCATION:
            fail(f"script: is longer than {MAX_LOCATION} characters")
        try:
            path = resolve_script(scripts_dir, script)
            exists = path is not None and path.is_file()
        except OSError as exc:  # a name too long for the file system, say: it names no script
            fail(f"script: {script[:80]!r} cannot be a file under the scripts directory ({exc.strerror})")
        if path is None:
            fail(f"script: {script!r} is outside the scripts directory")
        if not exists:
            fail(f"script: {script!r} does not exist under the scripts directory {scripts_dir}")
        return StepSpec(kind=StepKind.SCRIPT.value, target=script, name="", language=_language(script, language, fail))
    if not isinstance(script, dict):
        fail("script: must be a path under the scripts directory, or {git, ref, path}, or {url, sha256}")
    if "git" in script:
        unknown = unknown_keys(script, {"git", "ref", "path"})
        if unknown:
            fail(f"script.{unknown[0]}: unknown field (a git script has git, ref, path)")
        for key in ("git", "ref", "path"):
            if not isinstance(script.get(key), str) or not script[key].strip():
                fail(f"script.{key}: is required for a git script")
            limit = MAX_REF if key == "ref" else MAX_LOCATION
            if len(script[key]) > limit:
                fail(f"script.{key}: is longer than {limit} characters")
        path = script["path"]
        if path.startswith("/") or ".." in Path(path).parts:
            fail(f"script.path: {path!r} must be a relative path inside the repository")
        return StepSpec(
            kind=StepKind.GIT.value,
            target=path,
            name="",
            repository=script["git"],
            ref=script["ref"],
            language=_language(path, language, fail),
        )
    if "url" in script:
        unknown = unknown_keys(script, {"url", "sha256"})
        if unknown:
            fail(f"script.{unknown[0]}: unknown field (a url script has url, sha256)")
        url = script["url"]
        if not isinstance(url, str) or not re.match(r"^(https?|file)://", url):
            fail(f"script.url: {url!r} must be an http(s):// or file:// URL")
        if len(url) > MAX_LOCATION:
            fail(f"script.url: is longer than {MAX_LOCATION} characters")
        sha256 = script.get("sha256")
        if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
            fail("script.sha256: is required for a url script (64 hex digits)")
        return StepSpec(
            kind=StepKind.URL.value,
            target=url,
            name="",
            sha256=sha256.lower(),
            language=_language(url.split("?", 1)[0], language, fail),
        )
    fail("script: a mapping needs `git:` (with ref and path) or `url:` (with sha256)")


def _language(path: str, language: str | None, fail) -> str:
    if language:
        return language
    suffix = Path(path).suffix.lower()
    if suffix not in LANGUAGES:
        fail(f"language: cannot tell from {path!r}; add `language: shell` or `language: python`")
    return LANGUAGES[suffix]


def resolve_script(scripts_dir: Path, relative: str) -> Path | None:
    """Return the real path of ``relative`` under ``scripts_dir``, or None when it escapes it (``..``, symlinks)."""
    if "\x00" in relative or Path(relative).is_absolute():
        return None
    base = Path(scripts_dir).resolve()
    path = (base / relative).resolve()
    if path != base and base not in path.parents:
        return None
    return path


def load_spec_files(paths, scripts_dir: Path, fallbacks: dict[str, str], environ=None) -> list[PlanSpec]:
    """Read and validate every file (a directory means its *.yaml and *.yml files) before anything is written."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            files.append(path)
    plans: list[PlanSpec] = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: cannot be read ({exc})") from None
        for plan in parse_specs(text, str(path), scripts_dir, fallbacks, environ):
            if plan.name in seen:
                raise SpecError(f"{path}: plan {plan.name!r} is already defined in {seen[plan.name]}")
            seen[plan.name] = path
            plans.append(plan)
    return plans


def apply_specs(plans: list[PlanSpec]) -> list[SpecResult]:
    """Create or update the plans; a changed env or step list makes a new configuration version.

    Adds to the session without committing; the caller commits once.
    """
    results = []
    for spec in plans:
        plan = ServicePlan.by_name(spec.name)
        action = "unchanged"
        if plan is None:
            plan = ServicePlan(name=spec.name, **{"title": spec.name, **spec.fields})
            db.session.add(plan)
            db.session.flush()
            action = "created"
        else:
            if not plan.active:
                plan.active, plan.retired_at = True, None
                action = "reactivated"
            for key, value in spec.fields.items():
                if getattr(plan, key) != value:
                    setattr(plan, key, value)
                    action = "updated" if action == "unchanged" else action
        if spec.metrics is not None and apply_metrics(plan, spec.metrics) and action == "unchanged":
            action = "updated"
        newest = db.session.scalar(
            select(ServiceConfiguration)
            .where(ServiceConfiguration.plan_id == plan.id)
            .order_by(ServiceConfiguration.version.desc())
            .limit(1)
        )
        digest = spec.digest
        if newest is not None and newest.digest == digest and newest.active:
            results.append(SpecResult(spec.name, action, newest.version))
            continue
        version = (
            db.session.scalar(
                select(func.max(ServiceConfiguration.version)).where(ServiceConfiguration.plan_id == plan.id)
            )
            or 0
        ) + 1
        configuration = ServiceConfiguration(plan=plan, version=version, env=spec.env, digest=digest)
        configuration.steps = [
            ServiceStep(position=position, **asdict(step)) for position, step in enumerate(spec.steps, start=1)
        ]
        db.session.add(configuration)
        plan.updated_at = utcnow()
        results.append(SpecResult(spec.name, "created" if action == "created" else "updated", version))
    db.session.flush()
    return results


def spec_fallbacks(config) -> dict[str, str]:
    """The values ``${VAR}`` falls back to when the environment does not set it."""
    return {"CLUSTER_ID": config.get("CLUSTER_ID", "")}


def plan_spec(plan: ServicePlan, configuration: ServiceConfiguration | None = None) -> dict:
    """A plan and one of its configurations (the newest active one by default) in the spec format.

    Secret env values are masked: ``keep_masked`` puts them back when the spec is loaded again.
    """
    configuration = configuration or plan.current_configuration
    spec = {
        "plan": plan.name,
        "title": plan.title,
        "description": plan.description,
        "offered": plan.offered,
        "one_per_user": plan.one_per_user,
        "base_fee": plan.base_fee,
    }
    if plan.parameters is not None:
        spec["parameters"] = plan.parameters
    if plan.defaults:
        spec["defaults"] = masked_params(plan.defaults)
    if configuration is not None:
        spec["configuration"] = {"env": masked_params(configuration.env or {})}
        spec["steps"] = [step_spec(step) for step in configuration.steps]
    from ..models import Metric

    metrics = db.session.scalars(select(Metric).where(Metric.plan_id == plan.id).order_by(Metric.id)).all()
    if metrics:
        spec["metrics"] = [
            {key: value for key in sorted(METRIC_KEYS) if (value := getattr(metric, key)) not in (None, "", "0", [])}
            for metric in metrics
        ]
    return spec


def dump_specs(specs: list[dict]) -> str:
    """Specs as the YAML a spec file holds, keys in the order written."""
    return yaml.safe_dump(specs, sort_keys=False, allow_unicode=True, default_flow_style=False)


def keep_masked(spec: PlanSpec, configuration: ServiceConfiguration | None, defaults: dict | None = None) -> None:
    """A masked value (as exports and the API show secrets) sent back keeps the value it hides."""
    if configuration is not None:
        hidden = configuration.env or {}
        spec.env.update({key: hidden[key] for key, value in spec.env.items() if value == MASK and key in hidden})
    if defaults and "defaults" in spec.fields:
        spec.fields["defaults"] = {
            key: defaults[key] if value == MASK and key in defaults else value
            for key, value in spec.fields["defaults"].items()
        }
