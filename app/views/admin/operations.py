"""Operations: the periodic jobs (last run, outcome, next run), RQ's queues, workers and failed jobs."""

from datetime import UTC, datetime, timedelta

from croniter import croniter
from flask import abort, flash, redirect, url_for
from flask_admin import BaseView, expose
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import select

from ...extensions import db
from ...jobs.queues import ALL_QUEUES, get_queue, get_redis
from ...jobs.schedule import SCHEDULE
from ...models import PeriodicRun
from .base import AdminOnly, ConfirmForm

FAILED_SHOWN = 50


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def last_error(job: Job) -> str:
    """The last line of the job's latest failure, if any."""
    result = job.latest_result()
    text = (getattr(result, "exc_string", None) or "").strip() if result is not None else ""
    return text.splitlines()[-1] if text else ""


def rq_overview() -> dict:
    """Queue depths and live workers (the dashboard's numbers); ``error`` when Redis does not answer."""
    try:
        connection = get_redis()
        queues = []
        for name in ALL_QUEUES:
            queue = get_queue(name)
            queues.append(
                {
                    "name": name,
                    "queued": queue.count,
                    "started": StartedJobRegistry(queue=queue).count,
                    "scheduled": ScheduledJobRegistry(queue=queue).count,
                    "failed": FailedJobRegistry(queue=queue).count,
                }
            )
        workers = Worker.all(connection=connection)
        return {"queues": queues, "workers": workers, "error": None}
    except RedisError as exc:
        return {"queues": [], "workers": [], "error": f"Redis does not answer: {exc}"}


def periodic_runs(now: datetime) -> list[dict]:
    """Each periodic job with its latest recorded run (``periodic_runs``), its outcome and its next run."""
    rows = []
    for periodic in SCHEDULE:
        last = db.session.scalar(
            select(PeriodicRun).where(PeriodicRun.job == periodic.func).order_by(PeriodicRun.id.desc()).limit(1)
        )
        started = last.started_at if last is not None else None
        if periodic.cron:
            next_run = croniter(periodic.cron, max(started or now, now - timedelta(seconds=1))).get_next(datetime)
        elif started is not None:
            next_run = max(started + timedelta(seconds=periodic.interval), now)
        else:
            next_run = None  # runs when the scheduler starts
        rows.append(
            {
                "job": periodic,
                "every": f"every {periodic.interval} s" if periodic.interval else f"cron {periodic.cron} (UTC)",
                "last": last,
                "outcome": last.outcome if last is not None else None,
                "started": started,
                "ended": last.finished_at if last is not None else None,
                "next": next_run,
                "error": last.detail if last is not None and last.outcome == PeriodicRun.FAILED else "",
                "detail": last.detail if last is not None else "",
            }
        )
    return rows


def failed_jobs() -> list[dict]:
    """The newest failed jobs of every queue, with their error's last line."""
    jobs = []
    for name in ALL_QUEUES:
        registry = FailedJobRegistry(queue=get_queue(name))
        ids = registry.get_job_ids(0, FAILED_SHOWN - 1)
        jobs.extend(job for job in Job.fetch_many(ids, connection=get_redis()) if job is not None)
    jobs.sort(key=lambda job: _utc(job.ended_at) or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [{"job": job, "error": last_error(job)} for job in jobs]


class OperationsView(AdminOnly, BaseView):
    @expose("/")
    def index(self):
        now = datetime.now(UTC)
        overview = rq_overview()
        runs, failed = [], []
        runs = periodic_runs(now)
        if overview["error"] is None:
            try:
                failed = failed_jobs()
            except RedisError as exc:
                overview["error"] = f"Redis does not answer: {exc}"
        return self.render(
            "admin/operations.html", now=now, rq=overview, runs=runs, failed=failed, form=ConfirmForm(formdata=None)
        )

    @expose("/failed/<job_id>/<verb>", methods=["POST"])
    def failed_job(self, job_id: str, verb: str):
        """Requeue or delete a failed RQ job."""
        if verb not in ("requeue", "delete"):
            abort(404)
        if not ConfirmForm().validate_on_submit():
            abort(400)
        try:
            job = Job.fetch(job_id, connection=get_redis())
            if verb == "requeue":
                job.requeue()
                flash(f"Job {job_id} is queued again on {job.origin}.", "success")
            else:
                job.delete()
                flash(f"Job {job_id} is deleted.", "success")
        except NoSuchJobError:
            flash(f"There is no job {job_id} (it may have expired).", "error")
        except RedisError as exc:
            flash(f"Redis does not answer: {exc}", "error")
        except Exception as exc:  # noqa: BLE001 -- RQ raises plain exceptions for a job in the wrong registry
            flash(f"Job {job_id} could not be {verb}d: {exc}", "error")
        return redirect(url_for(".index"))
