"""Who owns a plan once an operator has edited it: the spec file, or the operator.

`flask createservice` records, on each plan it loads, a digest of the plan as that load left it
(``ServicePlan.spec_digest``). A plan whose state differs from that digest was changed since by an
operator (console, API, import) -- or was never loaded from a file. Loading a spec over such a plan
would overwrite those edits wherever the spec says something else, so a load:

- ``refuse`` (the default): writes nothing, and says which plans and fields would be overwritten;
- ``keep`` (`make run`): loads the other plans, leaves the edited ones as they are, and says so;
- ``overwrite``: loads everything, and says what it overwrote.

A plan the operator has not touched since its last load follows its spec file: shipped updates arrive.
"""

import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import select

from ..extensions import db
from ..models import Metric, ServicePlan
from .specs import METRIC_KEYS, PlanSpec, SpecError, SpecResult, apply_specs

# the plan columns a spec file sets (besides its configuration and metrics)
PLAN_FIELDS = ("title", "description", "offered", "one_per_user", "base_fee", "defaults", "parameters")
MODES = ("refuse", "keep", "overwrite")


@dataclass
class LoadReport:
    results: list[SpecResult] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)  # plan -> what its spec would have overwritten
    overwritten: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [str(result) for result in self.results]
        for name, changes in self.kept.items():
            out.append(
                f"{name}: kept as an operator edited it (its spec would change {', '.join(changes)}); "
                f"`flask createservice --specs FILE --overwrite` replaces the edits with the spec"
            )
        for name, changes in self.overwritten.items():
            out.append(f"{name}: the operator's edits were overwritten by the spec ({', '.join(changes)})")
        return out


def _metric_state(metric: Metric) -> dict:
    return {key: getattr(metric, key) for key in sorted(METRIC_KEYS)}


def plan_state(plan: ServicePlan) -> dict:
    """What loading a spec sets on ``plan``, as stored now: its fields, what its configuration runs, its metrics."""
    configuration = plan.current_configuration
    metrics = db.session.scalars(select(Metric).where(Metric.plan_id == plan.id).order_by(Metric.name)).all()
    return {
        # parameters only once declared: plans loaded before they existed keep their digest
        "fields": {
            key: getattr(plan, key) for key in PLAN_FIELDS if key != "parameters" or plan.parameters is not None
        },
        "active": plan.active,
        "configuration": configuration.digest if configuration is not None else None,
        "metrics": [_metric_state(metric) for metric in metrics],
    }


def state_digest(plan: ServicePlan) -> str:
    payload = json.dumps(plan_state(plan), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def edited_since_load(plan: ServicePlan) -> bool:
    """The plan is not as its last spec load left it (or no spec file ever loaded it)."""
    return plan.spec_digest != state_digest(plan)


def changes(plan: ServicePlan, spec: PlanSpec) -> list[str]:
    """What loading ``spec`` would change on ``plan``, by name (empty: nothing)."""
    out = [key for key, value in spec.fields.items() if getattr(plan, key) != value]
    if not plan.active:
        out.append("retired → active")
    configuration = plan.current_configuration
    if configuration is None or configuration.digest != spec.digest:
        out.append("env and steps")
    if spec.metrics is not None:
        stored = {m.name: m for m in db.session.scalars(select(Metric).where(Metric.plan_id == plan.id))}
        for metric in spec.metrics:
            current = stored.get(metric["name"])
            if current is None:
                out.append(f"metrics[{metric['name']}] (new)")
                continue
            out.extend(
                f"metrics[{metric['name']}].{key}"
                for key, value in sorted(metric.items())
                if getattr(current, key) != value
            )
    return out


def load_specs(specs: list[PlanSpec], mode: str = "refuse") -> LoadReport:
    """Load spec files' plans, minding operator edits as ``mode`` says; the caller commits.

    Raises SpecError (nothing written) in ``refuse`` mode when a spec would overwrite an operator's edit.
    """
    if mode not in MODES:
        raise ValueError(f"mode: one of {', '.join(MODES)}")
    report = LoadReport()
    load = []
    for spec in specs:
        plan = ServicePlan.by_name(spec.name)
        conflict = changes(plan, spec) if plan is not None and edited_since_load(plan) else []
        if not conflict:
            load.append(spec)
        elif mode == "keep":
            report.kept[spec.name] = conflict
        elif mode == "overwrite":
            report.overwritten[spec.name] = conflict
            load.append(spec)
        else:
            report.kept[spec.name] = conflict
    if report.kept and mode == "refuse":
        listing = "; ".join(f"{name}: {', '.join(what)}" for name, what in report.kept.items())
        raise SpecError(
            f"these plans were edited since their spec was last loaded, and loading would overwrite the edits -- "
            f"{listing}. Nothing was loaded: use --keep-edits to load the others and keep these as they are, "
            f"or --overwrite to replace the edits with the spec"
        )
    report.results = apply_specs(load)
    for spec in load:
        plan = ServicePlan.by_name(spec.name)
        plan.spec_digest = state_digest(plan)
    db.session.flush()
    return report
