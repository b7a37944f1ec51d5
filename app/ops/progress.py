"""A command's progress as people follow it: its steps in order, each with its latest task, and a log tail.

One reading for every place that shows progress: the self-service command page and its JSON
endpoint, the console's command detail, and ``flask deployservice --wait``.
"""

from dataclasses import dataclass

from ..models import ServiceCommand, ServiceTask, Status
from .runner import collect_secrets, make_masker

LOG_TAIL = 4000  # characters of the running (or failed) task's log shown on the progress page


@dataclass
class StepProgress:
    number: int  # 1-based, in the order the command runs its steps
    name: str
    task: ServiceTask | None  # the latest attempt; None: not reached yet

    @property
    def status(self) -> str:
        return self.task.status.name if self.task is not None else "WAITING"


def step_numbers(command: ServiceCommand) -> dict[int, int]:
    """Step position -> its 1-based number among the steps of the command's phase."""
    steps = command.configuration.steps_for(command.phase)
    return {step.position: number for number, step in enumerate(steps, start=1)}


def steps_of(command: ServiceCommand) -> list[StepProgress]:
    """The command's steps in order, each with the latest attempt of its task (tasks loaded by the caller)."""
    latest: dict[int, ServiceTask] = {}
    for task in command.tasks:
        if task.position not in latest or task.attempt >= latest[task.position].attempt:
            latest[task.position] = task
    steps = command.configuration.steps_for(command.phase)
    progress = []
    for number, step in enumerate(steps, start=1):
        task = latest.get(step.position)
        progress.append(StepProgress(number, task.name if task is not None else step.name, task))
    # tasks of steps that are no longer in the configuration (edited since) still show
    known = {step.position for step in steps}
    extra = [task for position, task in sorted(latest.items()) if position not in known]
    progress += [StepProgress(len(progress) + i, task.name, task) for i, task in enumerate(extra, start=1)]
    return progress


def focus_task(command: ServiceCommand, steps: list[StepProgress]) -> ServiceTask | None:
    """The task whose log to show: the running one, else the failed one, else the last that ran."""
    tasks = [step.task for step in steps if step.task is not None]
    for wanted in (Status.PENDING, Status.FAILED):
        for task in tasks:
            if task.status == wanted:
                return task
    return tasks[-1] if tasks else None


def log_tail(text: str, limit: int = LOG_TAIL) -> str:
    """The last ``limit`` characters of a log, cut at a line start when one is near."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    cut = tail.find("\n")
    return tail[cut + 1 :] if 0 <= cut < 200 else tail


def command_masker(command: ServiceCommand):
    """Hides the secrets of the command's deployment and params in a text (logs are masked when written too)."""
    deployment = command.deployment
    return make_masker(collect_secrets(deployment.settings or {}, deployment.params or {}, command.params or {}))


def command_progress(command: ServiceCommand) -> dict:
    """The JSON the progress page polls: status, steps with their tasks, percent done, the focus task's log tail."""
    mask = command_masker(command)
    steps = steps_of(command)
    done = sum(1 for step in steps if step.task is not None and step.task.status == Status.COMPLETED)
    total = len(steps)
    focus = focus_task(command, steps)
    return {
        "id": command.id,
        "phase": command.phase,
        "status": command.status.name,
        "status_code": str(int(command.status)),
        "final": command.status.is_final,
        "failure_reason": command.failure_reason,
        "failure_detail": mask(command.failure_detail or ""),
        "cancel_requested": command.cancel_requested_at is not None,
        "deployment": command.deployment_id,
        "done": done,
        "total": total,
        "percent": 100 if command.status == Status.COMPLETED else (round(100 * done / total) if total else 0),
        "steps": [
            {
                "number": step.number,
                "name": step.name,
                "status": step.status,
                "task": step.task.id if step.task is not None else None,
                "attempt": step.task.attempt if step.task is not None else None,
                "exit_code": step.task.exit_code if step.task is not None else None,
                "failure_reason": step.task.failure_reason if step.task is not None else None,
            }
            for step in steps
        ],
        "log": {
            "task": focus.id if focus is not None else None,
            "name": focus.name if focus is not None else None,
            "tail": mask(log_tail(focus.log or "")) if focus is not None else "",
        },
    }
