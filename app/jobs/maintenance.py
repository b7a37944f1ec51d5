"""Daily maintenance: old task logs shortened to a summary, old idempotency keys and periodic runs deleted,
RQ's registries cleaned of expired job data."""

from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from rq.registry import clean_registries
from sqlalchemy import delete, select, update

from ..extensions import db
from ..models import IdempotencyKey, PeriodicRun, ServiceTask
from ..models.types import utcnow
from .queues import ALL_QUEUES, get_queue

PURGED = "[log purged"
KEEP_LINES = 20  # of a purged log: its last lines, where the outcome usually is
BATCH = 1000


def summary(log: str, when) -> str:
    """What is kept of a task's log: how long it was and its last lines."""
    lines = log.rstrip("\n").splitlines()
    kept = "\n".join(lines[-KEEP_LINES:])
    return f"{PURGED} {when:%Y-%m-%d}: {len(log)} characters, {len(lines)} lines; the last {KEEP_LINES}:]\n{kept}\n"


def purge_task_logs(days: int) -> int:
    """Shorten the logs of tasks finished more than ``days`` ago to their summary; status, exit code and
    failure reason stay as they are."""
    cutoff, now, count = utcnow() - timedelta(days=days), utcnow(), 0
    while True:
        rows = db.session.execute(
            select(ServiceTask.id, ServiceTask.log)
            .where(
                ServiceTask.finished_at < cutoff,
                ServiceTask.log != "",
                ~ServiceTask.log.startswith(PURGED),
            )
            .limit(BATCH)
        ).all()
        if not rows:
            return count
        for task_id, log in rows:
            db.session.execute(update(ServiceTask).where(ServiceTask.id == task_id).values(log=summary(log, now)))
        db.session.commit()
        count += len(rows)


def purge_before(model, column, days: int) -> int:
    result = db.session.execute(delete(model).where(column < utcnow() - timedelta(days=days)))
    db.session.commit()
    return result.rowcount


def clean_rq() -> str:
    """Let RQ drop the ids of expired jobs from its registries (job data itself expires with its TTL)."""
    try:
        for name in ALL_QUEUES:
            clean_registries(get_queue(name))
    except RedisError as exc:
        return f"not reachable ({exc})"
    return "cleaned"


def maintenance() -> dict:
    config = current_app.config
    return {
        "task logs purged": purge_task_logs(config["TASK_LOG_RETENTION_DAYS"]),
        "idempotency keys deleted": purge_before(
            IdempotencyKey, IdempotencyKey.created_at, config["IDEMPOTENCY_KEY_DAYS"]
        ),
        "periodic runs deleted": purge_before(PeriodicRun, PeriodicRun.started_at, config["PERIODIC_RUN_DAYS"]),
        "RQ registries": clean_rq(),
    }
