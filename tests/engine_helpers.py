"""Helpers for engine tests: plans made of scripts written into a temporary scripts directory."""

import textwrap

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import ServiceCommand, ServiceTask, User
from app.ops.commands import issue_command
from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

from .factories import TEST_PARAMETERS


def write_script(name: str, body: str, mode: int = 0o644) -> str:
    """Write a script under the app's SCRIPTS_DIR and return its relative path."""
    path = current_app.config["SCRIPTS_DIR"] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).lstrip())
    path.chmod(mode)
    return name


def make_script_plan(
    name: str,
    steps: str,
    offered: bool = True,
    one_per_user: bool = True,
    env: str = "",
    parameters: str | None = None,
):
    """A plan whose steps are given as YAML (indented under `steps:`); ``parameters`` YAML, else the tests' own."""
    declared = TEST_PARAMETERS.strip("\n") if parameters is None else parameters
    text = f"""
- plan: {name}
  offered: {str(offered).lower()}
  one_per_user: {str(one_per_user).lower()}
{declared}
  configuration:
    env: {{{env}}}
  steps:
{textwrap.indent(textwrap.dedent(steps).strip(), "    ")}
"""
    plans = parse_specs(text, "test", current_app.config["SCRIPTS_DIR"], spec_fallbacks(current_app.config))
    apply_specs(plans)
    db.session.commit()
    return plans[0]


def issue(plan: str, user: User, phase: str = "install", params: str = "", **kwargs) -> ServiceCommand:
    command = issue_command(plan=plan, user=user, phase=phase, params=params, privileged=True, **kwargs)
    db.session.commit()
    return command


def tasks_of(command_id: int) -> list[ServiceTask]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(ServiceTask)
            .where(ServiceTask.command_id == command_id)
            .order_by(ServiceTask.position, ServiceTask.attempt)
        )
    )


def reload(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)
