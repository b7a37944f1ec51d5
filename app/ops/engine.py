"""Executing commands: claim, run the phase's steps one task each, finish; cancel, retry and reap.

The database is the source of truth: every change of state is committed as it happens, so another
process (the pages, the API, the reaper) sees a command's progress and its tasks' logs while it runs.
"""

import importlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..models import (
    FailureReason,
    Health,
    Phase,
    ServiceCommand,
    ServiceStep,
    ServiceTask,
    Status,
    StepKind,
)
from ..models.status import conditional_transition
from ..models.types import utcnow
from . import sources
from .commands import CommandRefused, ParamsRefused, checked_params, in_flight_command
from .params import ParamsError, format_params, parse_params
from .runner import LogBuffer, collect_secrets, kill_group, make_masker, run_script, script_env
from .specs import resolve_script
from .tasks import StepContext

log = logging.getLogger(__name__)
HOST = socket.gethostname()


class StepFailed(Exception):
    """A step that failed before or after its script ran; ``reason`` is a FailureReason value."""

    def __init__(self, reason: str, detail: str, exit_code: int | None = None, log: str | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.exit_code, self.log = reason, detail, exit_code, log


def script_error(detail: str, exit_code: int | None = None, log: str | None = None) -> StepFailed:
    return StepFailed(FailureReason.SCRIPT_ERROR.value, detail, exit_code, log)


def deep_merge(base: dict, new: dict) -> dict:
    """A copy of ``base`` with ``new`` merged in: nested dicts merge, other values replace."""
    merged = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def claim(command_id: int, worker: str) -> bool:
    """Move the command INITIATED -> PENDING; False when another worker (or a cancel) got there first."""
    now = utcnow()
    won = conditional_transition(
        ServiceCommand, command_id, Status.INITIATED, Status.PENDING, started_at=now, heartbeat_at=now, worker=worker
    )
    db.session.commit()
    return won


def execute(command_id: int, worker: str | None = None) -> Status | None:
    """Run a command to its end; None when it was not ours to run (claimed elsewhere, finished, cancelled)."""
    worker = worker or f"{HOST}:{os.getpid()}"
    if not claim(command_id, worker):
        log.info("command %s: not claimed (already running, finished or cancelled)", command_id)
        return None
    session = db.session()
    expire_on_commit = session.expire_on_commit
    # the runner is the one writer of its command's progress: what it loaded stays valid across its
    # commits (no re-reads); its last word is a conditional update, so a reaper or a cancel still wins
    session.expire_on_commit = False
    try:
        return _execute(db.session.get(ServiceCommand, command_id))
    finally:
        session.expire_on_commit = expire_on_commit


def _execute(command: ServiceCommand) -> Status:
    created: list[int] = []
    try:
        _start_deployment(command)  # committed with the first task
        steps = command.configuration.steps_for(command.phase)
        resolved = _resolve_sources(steps)
        for number, step in enumerate(steps, start=1):
            if not _run_step(command, step, resolved.get(step.id), created):
                return command.status
            if number < len(steps):
                db.session.commit()
                _enqueue_all(created)
        _finish(command)
        db.session.commit()
        _enqueue_all(created)
    except StepFailed as exc:
        db.session.rollback()
        _fail(command, exc.reason, exc.detail)
        db.session.commit()
    except Exception as exc:
        # a bug or an outage of ours, not the script's: record it, never leave the command PENDING
        log.exception("command %s: system error", command.id)
        db.session.rollback()
        _fail(command, FailureReason.SYSTEM_ERROR.value, f"{type(exc).__name__}: {exc}")
        db.session.commit()
    return command.status


def _start_deployment(command: ServiceCommand) -> None:
    deployment = command.deployment
    if command.phase == Phase.CHECK:
        return
    if deployment.status == Status.REMOVED:
        raise StepFailed(FailureReason.SYSTEM_ERROR.value, f"deployment {deployment.id} is removed")
    deployment.status = Status.PENDING
    deployment.text = f"{command.phase} in progress"


def _resolve_sources(steps: list[ServiceStep]) -> dict[int, str]:
    """Resolve each git ref to a commit when the command starts, so every task of it runs the same code."""
    allowed = current_app.config["SCRIPT_SOURCES"]
    resolved = {}
    for step in steps:
        if step.kind == StepKind.GIT:
            try:
                resolved[step.id] = sources.resolve_git_ref(step.repository, step.ref, allowed)
            except sources.SourceError as exc:
                raise StepFailed(
                    FailureReason.SCRIPT_ERROR.value, f"step {step.position} ({step.name}): {exc}"
                ) from None
        elif step.kind == StepKind.URL:
            resolved[step.id] = step.sha256
    return resolved


def _snapshot(step: ServiceStep) -> dict:
    fields = ("kind", "target", "language", "repository", "ref", "sha256", "phases", "params", "timeout", "retries")
    return {field: getattr(step, field) for field in fields}


def _run_step(command: ServiceCommand, step: ServiceStep, resolved: str | None, created: list[int]) -> bool:
    """Run one step, with its retries; True when it completed (its results are left for the caller to commit)."""
    config = current_app.config
    attempts = 1 + (step.retries or 0)
    for attempt in range(1, attempts + 1):
        now = utcnow()
        task = ServiceTask(
            command=command,
            deployment_id=command.deployment_id,
            position=step.position,
            attempt=attempt,
            name=step.name,
            step=_snapshot(step),
            resolved=resolved,
        )
        db.session.add(task)
        task.status = Status.PENDING
        task.started_at = task.heartbeat_at = now
        task.host = HOST
        command.heartbeat_at = now
        db.session.commit()
        try:
            outputs, log_text = _execute_step(command, task, step, resolved, created)
        except StepFailed as exc:
            db.session.rollback()  # what a failed step changed does not count; its log does
            if exc.log is not None:
                task.log = exc.log
            _finish_task(task, Status.FAILED, exc.reason, exc.detail, exc.exit_code)
            if exc.reason == FailureReason.CANCELLED or attempt == attempts or _cancel_requested(command):
                _fail(command, exc.reason, f"step {step.position} ({step.name}) failed: {exc.detail}")
                db.session.commit()
                return False
            db.session.commit()
            delay = min(config["RETRY_BACKOFF_SECONDS"] * 2 ** (attempt - 1), 60)
            log.info(
                "command %s: step %s attempt %s failed, retrying in %ss", command.id, step.position, attempt, delay
            )
            # the backoff is not silence: beat ahead of it so the reaper does not take it for a dead worker
            command.heartbeat_at = utcnow() + timedelta(seconds=delay)
            db.session.commit()
            time.sleep(delay)
            continue
        if outputs:
            command.deployment.settings = deep_merge(command.deployment.settings or {}, outputs)
        task.outputs = outputs
        task.log = log_text
        _finish_task(task, Status.COMPLETED, None, "", 0)
        return True
    return False


def _enqueue_all(created: list[int]) -> None:
    """Enqueue the commands the steps issued, now that they are committed."""
    from ..jobs.provisioning import enqueue_command

    for command_id in created:
        enqueue_command(command_id)
    created.clear()


def _finish_task(task: ServiceTask, status: Status, reason: str | None, detail: str, exit_code: int | None) -> None:
    task.status = status
    task.failure_reason = reason
    task.exit_code = exit_code
    task.finished_at = utcnow()
    if detail and status == Status.FAILED:
        task.log = (task.log or "") + f"\n[omegaops] failed: {detail}\n"


def _params_for(command: ServiceCommand, step: ServiceStep) -> dict[str, str]:
    return {**parse_params(step.params), **(command.params or {})}


def _execute_step(command, task, step, resolved, created) -> tuple[dict, str]:
    """Run the step's callable or script; return its outputs and its (masked) log."""
    params = _params_for(command, step)
    deployment = command.deployment
    secrets = collect_secrets(deployment.settings or {}, params, command.configuration.env)
    if step.kind == StepKind.TASK:
        return _execute_callable(command, task, step, params, secrets, created)
    path = _script_path(step, resolved)
    return _execute_script(command, task, step, path, params, secrets)


def _execute_callable(command, task, step, params, secrets, created) -> tuple[dict, str]:
    module_name, attr = step.target.rsplit(".", 1)
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise StepFailed(FailureReason.SYSTEM_ERROR.value, f"cannot load {step.target}: {exc}") from None
    ctx = StepContext(
        command=command,
        deployment=command.deployment,
        user=command.user,
        phase=command.phase,
        params=params,
        env=dict(command.configuration.env or {}),
    )
    mask = make_masker(secrets)
    try:
        outputs = func(ctx) or {}
    except CommandRefused as exc:
        raise script_error(exc.message, log=mask(said(ctx))) from None
    except Exception as exc:
        log.exception("command %s: step %s raised", command.id, step.target)
        # what the step said before it failed stays in its task's log (the failure is added after it)
        raise script_error(f"{type(exc).__name__}: {exc}", log=mask(said(ctx))) from None
    if not isinstance(outputs, dict):
        raise StepFailed(
            FailureReason.SCRIPT_ERROR.value, f"{step.target} returned {type(outputs).__name__}, not a dict"
        )
    created.extend(ctx.issued)
    mask = make_masker(secrets | collect_secrets(outputs))
    return outputs, mask(said(ctx))


def said(ctx: StepContext) -> str:
    """A callable step's log lines as log text."""
    return "\n".join(ctx.log) + ("\n" if ctx.log else "")


def _script_path(step: ServiceStep, resolved: str | None) -> Path:
    config = current_app.config
    try:
        if step.kind == StepKind.SCRIPT:
            path = resolve_script(config["SCRIPTS_DIR"], step.target)
            if path is None:
                raise script_error(f"{step.target} is outside the scripts directory")
            if not path.is_file():
                raise StepFailed(
                    FailureReason.SCRIPT_ERROR.value, f"{step.target} does not exist in the scripts directory"
                )
            return path
        cache = Path(config["INSTANCE_DIR"]) / "cache"
        allowed = config["SCRIPT_SOURCES"]
        if step.kind == StepKind.GIT:
            checkout = sources.git_checkout(step.repository, resolved, cache, allowed)
            return sources.script_in_checkout(checkout, step.target)
        return sources.fetch_url(step.target, step.sha256, cache, allowed)
    except sources.SourceError as exc:
        raise script_error(str(exc)) from None


def _execute_script(command, task, step, path: Path, params, secrets) -> tuple[dict, str]:
    config = current_app.config
    deployment = command.deployment
    state_dir = Path(config["INSTANCE_DIR"]) / "state" / f"deployment-{deployment.id}"
    state_dir.mkdir(parents=True, exist_ok=True)
    mask = make_masker(secrets)
    buffer = LogBuffer(config["TASK_LOG_HEAD"], config["TASK_LOG_TAIL"])
    interpreter = ["/bin/bash"] if step.language == "shell" else [sys.executable]
    with tempfile.TemporaryDirectory(prefix=f"omegaops-task-{task.id}-") as workdir:
        output_path = Path(workdir) / ".omegaops-output.json"
        env = script_env(
            command.configuration.env or {},
            home=workdir,
            params=params,
            extra={
                "OMEGAOPS_COMMAND_ID": str(command.id),
                "OMEGAOPS_TASK_ID": str(task.id),
                "OMEGAOPS_PHASE": command.phase,
                "OMEGAOPS_USER": command.user.userid,
                "OMEGAOPS_DEPLOYMENT_ID": str(deployment.id),
                "OMEGAOPS_PLAN": command.plan.name,
                "OMEGAOPS_OUTPUT": str(output_path),
                "OMEGAOPS_SETTINGS": _json(deployment.settings or {}),
                "OMEGAOPS_STATE_DIR": str(state_dir),
            },
        )

        def on_start(pgid: int) -> None:
            task.pgid = pgid  # saved at the first tick: only a script that runs that long can be orphaned

        def on_tick() -> bool:
            now = utcnow()
            task.heartbeat_at = command.heartbeat_at = now
            if buffer.changed:
                task.log = buffer.render(mask)
                buffer.changed = False
            db.session.commit()
            return not _cancel_requested(command)

        result = run_script(
            [*interpreter, str(path)],
            env=env,
            cwd=workdir,
            timeout=step.timeout or config["DEFAULT_STEP_TIMEOUT"],
            log=buffer,
            on_start=on_start,
            on_tick=on_tick,
            tick_interval=config["TASK_TICK_SECONDS"],
            grace=config["KILL_GRACE_SECONDS"],
        )
        outputs = {}
        if result.ok and output_path.exists() and output_path.stat().st_size:
            try:
                outputs = _load_json(output_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise script_error(f"invalid JSON in $OMEGAOPS_OUTPUT: {exc}", 0, buffer.render(mask)) from None
        mask = make_masker(secrets | collect_secrets(outputs))
        text = buffer.render(mask)
        if not result.ok:
            raise StepFailed(result.reason, result.detail, result.exit_code, text)
        return outputs, text


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def _load_json(text: str) -> dict:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _cancel_requested(command: ServiceCommand) -> bool:
    return (
        db.session.scalar(select(ServiceCommand.cancel_requested_at).where(ServiceCommand.id == command.id))
        is not None
    )


def _finish(command: ServiceCommand) -> None:
    """All steps completed: the command is COMPLETED and the deployment moves on by phase."""
    now = utcnow()
    if not conditional_transition(
        ServiceCommand, command.id, Status.PENDING, Status.COMPLETED, obj=command, finished_at=now
    ):
        log.warning("command %s: finished after it was failed elsewhere (reaped or cancelled)", command.id)
        return
    deployment = command.deployment
    if command.phase == Phase.CHECK:
        deployment.health, deployment.checked_at = Health.HEALTHY.value, now
    elif command.phase == Phase.UNINSTALL:
        deployment.status = Status.REMOVED
        deployment.removed_at = now
        deployment.text = "removed"
    else:
        deployment.status = Status.COMPLETED
        deployment.configuration_id = command.configuration_id
        deployment.params = {**(deployment.params or {}), **(command.params or {})}
        deployment.text = ""


def _fail(command: ServiceCommand, reason: str, detail: str) -> None:
    """The command FAILED: record why; the deployment is FAILED (or unhealthy, for a check)."""
    detail = detail[:4000]
    if not conditional_transition(
        ServiceCommand,
        command.id,
        Status.PENDING,
        Status.FAILED,
        obj=command,
        failure_reason=reason,
        failure_detail=detail,
        finished_at=utcnow(),
    ):
        return  # finished meanwhile (reaped, or cancelled before it started): that outcome stands
    _fail_rest(command, reason, detail)


def _fail_rest(command: ServiceCommand, reason: str, detail: str) -> None:
    now = utcnow()
    # tasks a crash left running are part of the failure
    for stale in db.session.scalars(
        select(ServiceTask).where(ServiceTask.command_id == command.id, ServiceTask.status == Status.PENDING)
    ):
        _finish_task(stale, Status.FAILED, reason, detail, stale.exit_code)
    deployment = command.deployment
    if command.phase == Phase.CHECK:
        deployment.health, deployment.checked_at = Health.UNHEALTHY.value, now
    elif deployment.status == Status.PENDING:
        deployment.status = Status.FAILED
        deployment.text = f"{command.phase} failed: {detail}"[:1000]


def request_cancel(command: ServiceCommand) -> str:
    """Cancel a command: one not started yet fails at once; a running one is stopped by its runner.

    Returns what happened, for the caller to show. Commits.
    """
    if command.status.is_final:
        raise CommandRefused("invalid", f"command {command.id} is {command.status.name} already")
    now = utcnow()
    if command.status == Status.INITIATED and conditional_transition(
        ServiceCommand,
        command.id,
        Status.INITIATED,
        Status.FAILED,
        failure_reason=FailureReason.CANCELLED.value,
        failure_detail="cancelled before it started",
        finished_at=now,
    ):
        db.session.expire(command)
        deployment = command.deployment
        if command.phase == Phase.INSTALL and deployment.status == Status.INITIATED:
            deployment.status = Status.REMOVED  # nothing was installed
            deployment.removed_at = now
            deployment.text = "install cancelled"
        db.session.commit()
        return "cancelled"
    db.session.execute(
        update(ServiceCommand)
        .where(ServiceCommand.id == command.id, ServiceCommand.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now)
    )
    db.session.commit()
    db.session.expire(command)
    return "cancel requested: the running step is being stopped"


def retry(command: ServiceCommand, issuer=None, params: str | dict | None = None) -> ServiceCommand:
    """Issue a failed command again, as a new command on the same deployment (history kept). Adds, no commit.

    ``params`` (``k=v,...``, or a dict) go over the failed command's: a value that made a step fail is
    corrected in the retry. Without them the same params run again, checked anew against the plan's
    parameters (which may have changed since).
    """
    if command.status != Status.FAILED:
        raise CommandRefused(
            "invalid", f"only a FAILED command can be retried; command {command.id} is {command.status.name}"
        )
    deployment = command.deployment
    if deployment.status == Status.REMOVED:
        raise CommandRefused("invalid", f"deployment {deployment.id} is removed: install it anew")
    blocking = in_flight_command(deployment)
    if blocking is not None:
        raise CommandRefused("conflict", f"command {blocking.id} is still {blocking.status.name}", blocking=blocking)
    plan = command.plan
    given = dict(command.params or {})
    if params is not None:
        try:
            given.update(params if isinstance(params, dict) else parse_params(params))
        except ParamsError as exc:
            raise ParamsRefused(str(exc)) from None
    try:
        checked = checked_params(plan, given, command.phase)
    except CommandRefused as exc:
        if params is None:
            exc.message += "; retry with corrected params"
            exc.args = (exc.message,)
        raise
    if command.phase == Phase.INSTALL and params is not None:
        deployment.params = checked  # what the corrected install is given
    configuration = plan.current_configuration if command.phase in (Phase.INSTALL, Phase.UPDATE) else None
    again = ServiceCommand(
        issuer=issuer,
        user=command.user,
        plan=plan,
        deployment=deployment,
        configuration=configuration or command.configuration,
        phase=command.phase,
        params=checked,
        params_raw=command.params_raw if params is None else format_params(given),
        retry_of=command,
    )
    db.session.add(again)
    db.session.flush()
    return again


def reap_lost(lost_after: float) -> int:
    """Fail the commands whose runner stopped beating (worker lost); return how many. Commits."""
    cutoff = utcnow() - timedelta(seconds=lost_after)
    lost = db.session.scalars(
        select(ServiceCommand.id).where(ServiceCommand.status == Status.PENDING, ServiceCommand.heartbeat_at < cutoff)
    ).all()
    reaped = 0
    for command_id in lost:
        detail = f"no heartbeat for more than {lost_after:g}s"
        # only if it is still silent: a runner that beat meanwhile keeps its command
        won = conditional_transition(
            ServiceCommand,
            command_id,
            Status.PENDING,
            Status.FAILED,
            ServiceCommand.heartbeat_at < cutoff,
            failure_reason=FailureReason.WORKER_LOST.value,
            failure_detail=detail,
            finished_at=utcnow(),
        )
        if not won:
            db.session.rollback()
            continue
        command = db.session.get(ServiceCommand, command_id)
        db.session.refresh(command)
        for task in command.tasks:
            if task.status == Status.PENDING and task.host == HOST and task.pgid:
                kill_group(task.pgid, 1.0)  # the orphaned script of a dead worker on this machine
        _fail_rest(command, FailureReason.WORKER_LOST.value, detail)
        db.session.commit()
        reaped += 1
    return reaped
