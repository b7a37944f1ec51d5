"""The RQ worker started through the app: jobs run in an app context against the real database and Redis."""

from sqlalchemy import func, select

from app.extensions import db
from app.jobs.queues import PROVISIONING, get_queue
from app.jobs.worker import make_worker
from app.models import ServicePlan

from .factories import make_plan


def count_plans():
    """A job that needs the app: it queries the database through the app's session."""
    return db.session.scalar(select(func.count()).select_from(ServicePlan))


def test_worker_runs_jobs_inside_the_app(app):
    make_plan(name="one")
    make_plan(name="two")
    job = get_queue(PROVISIONING).enqueue(count_plans, job_timeout=30, result_ttl=60)
    worker = make_worker()
    assert worker.work(burst=True)
    job.refresh()
    assert job.is_finished, job.latest_result().exc_string if job.latest_result() else job.get_status()
    assert job.return_value() == 2


def test_worker_command_exits_with_one_line_when_redis_is_down(app):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions["omegaops.redis"] = None
    result = app.test_cli_runner().invoke(args=["worker", "--burst", "--wait", "0"])
    assert result.exit_code == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in result.output
    assert "Traceback" not in result.output
