"""Every periodic job runs through ``run_recorded``: a row in ``periodic_runs`` says when it ran, how it ended
and what it did. A failing job is recorded (and fails its RQ job); the others run on regardless."""

import importlib
import logging

from ..extensions import db
from ..models import PeriodicRun
from ..models.types import utcnow

log = logging.getLogger(__name__)
MAX_DETAIL = 2000


def describe(result) -> str:
    """A job's return value as the run's detail: a number is "n done", a dict its items, text itself."""
    if result is None:
        return ""
    if isinstance(result, dict):
        return ", ".join(f"{key}: {value}" for key, value in result.items())
    return str(result)


def _finish(run_id: int, outcome: str, detail: str) -> None:
    run = db.session.get(PeriodicRun, run_id)
    run.outcome, run.finished_at, run.detail = outcome, utcnow(), detail[:MAX_DETAIL]
    db.session.commit()


def run_recorded(path: str) -> str:
    """RQ job: run the periodic job ``path`` (a dotted function path) and record the run."""
    run = PeriodicRun(job=path)
    db.session.add(run)
    db.session.commit()
    run_id = run.id
    module_name, attr = path.rsplit(".", 1)
    try:
        result = getattr(importlib.import_module(module_name), attr)()
    except Exception as exc:
        db.session.rollback()
        log.exception("periodic job %s failed", path)
        _finish(run_id, PeriodicRun.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    detail = describe(result)
    _finish(run_id, PeriodicRun.OK, detail)
    return detail
