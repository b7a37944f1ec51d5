"""Command execution on RQ: commit first, then ``enqueue_command``; the worker runs ``execute_command``."""

import logging

from flask import current_app
from redis.exceptions import RedisError
from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from ..extensions import db
from ..models import ServiceCommand
from ..ops import engine
from ..ops.commands import issue_command
from .queues import PROVISIONING, get_queue, get_redis

log = logging.getLogger(__name__)
WAITING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def job_id(command_id: int) -> str:
    return f"omegaops-command-{command_id}"


def execute_command(command_id: int) -> str | None:
    """RQ job: run one command (a no-op when another worker claimed it, or it finished)."""
    job = get_current_job()
    status = engine.execute(command_id, worker=job.worker_name if job else None)
    return status.name if status is not None else None


def enqueue_command(command_id: int) -> bool:
    """Put a committed command on the provisioning queue; False when Redis is unreachable.

    The command stays INITIATED then, and the dispatcher enqueues it when Redis is back.
    """
    try:
        get_queue(PROVISIONING).enqueue(
            execute_command,
            command_id,
            job_id=job_id(command_id),
            job_timeout=current_app.config["COMMAND_JOB_TIMEOUT"],
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            description=f"command {command_id}",
        )
        return True
    except RedisError as exc:
        log.warning("command %s: not enqueued, Redis is unreachable (%s); the dispatcher will retry", command_id, exc)
        return False


def is_waiting(command_id: int) -> bool:
    """Whether the command's job is already queued or running in RQ."""
    try:
        return Job.fetch(job_id(command_id), connection=get_redis()).get_status(refresh=False) in WAITING
    except NoSuchJobError:
        return False


def submit(**kwargs) -> ServiceCommand:
    """Issue a command (``issue_command``'s arguments), commit it, then enqueue it: what the pages do.

    Raises ``CommandRefused`` with nothing written. Redis down: the command waits for the dispatcher.
    """
    command = issue_command(**kwargs)
    db.session.commit()
    enqueue_command(command.id)
    return command


def submit_retry(command: ServiceCommand, issuer=None, params: str | dict | None = None) -> ServiceCommand:
    """Retry a FAILED command as a new one (with corrected ``params``), commit and enqueue it; ``CommandRefused``
    when it cannot be."""
    again = engine.retry(command, issuer=issuer, params=params)
    db.session.commit()
    enqueue_command(again.id)
    return again
