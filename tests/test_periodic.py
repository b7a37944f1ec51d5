"""Periodic jobs: every run recorded, a failing job visible and not stopping the others, cron times in UTC
whatever TZ says, health checks, maintenance."""

import os
import time
from datetime import UTC, timedelta

import pytest
from rq import Queue, SimpleWorker
from sqlalchemy import func, select, update

from app.extensions import db
from app.jobs.maintenance import PURGED, maintenance
from app.jobs.periodic import health_checks
from app.jobs.queues import PERIODIC, get_redis
from app.jobs.recorded import run_recorded
from app.jobs.schedule import SCHEDULE, build_cron
from app.models import Health, IdempotencyKey, PeriodicRun, ServiceCommand, ServiceTask, Status
from app.models.types import utcnow
from app.ops import engine

from .engine_helpers import issue, make_script_plan, reload, write_script
from .factories import make_user


def runs(job=None) -> list[PeriodicRun]:
    db.session.expire_all()
    query = select(PeriodicRun).order_by(PeriodicRun.id)
    if job:
        query = query.where(PeriodicRun.job == job)
    return list(db.session.scalars(query))


def test_every_run_is_recorded_with_its_outcome(app):
    assert run_recorded("app.jobs.periodic.dispatch_initiated") == "0"
    with pytest.raises(RuntimeError):
        run_recorded("tests.steps.broken_job")
    ok, failed = runs()
    assert (ok.job, ok.outcome, ok.detail) == ("app.jobs.periodic.dispatch_initiated", "ok", "0")
    assert ok.finished_at >= ok.started_at
    assert (failed.outcome, failed.detail) == ("failed", "RuntimeError: the job broke")


def test_a_failing_job_does_not_stop_the_others(app):
    queue = Queue(PERIODIC, connection=get_redis())
    for path in (
        "tests.steps.broken_job",
        "app.jobs.periodic.reap_lost_tasks",
        "app.jobs.periodic.dispatch_initiated",
    ):
        queue.enqueue(run_recorded, path)
    from app.jobs.worker import AppJob

    SimpleWorker([queue], connection=get_redis(), job_class=AppJob).work(burst=True)
    assert [(run.job.rsplit(".", 1)[1], run.outcome) for run in runs()] == [
        ("broken_job", "failed"),
        ("reap_lost_tasks", "ok"),
        ("dispatch_initiated", "ok"),
    ]


def test_the_operations_page_shows_the_last_run_of_each_job(app, client, login):
    run_recorded("app.jobs.periodic.reap_lost_tasks")
    with pytest.raises(RuntimeError):
        run_recorded("tests.steps.broken_job")
    login(make_user(admin=True))
    page = client.get("/admin/operations/").get_data(as_text=True)
    assert "app.jobs.maintenance.maintenance" in page and "cron 30 3 * * * (UTC)" in page
    assert "not run yet" in page and ">ok<" in page
    assert "RuntimeError: the job broke" in client.get("/admin/periodicrun/").get_data(as_text=True)


@pytest.fixture
def tokyo():
    """The machine's local time zone is not UTC (RQ 3 would read cron strings in it)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_cron_times_are_utc_whatever_the_machine_time_zone(app, tokyo):
    assert time.strftime("%Z") in ("JST", "+09")
    cron = build_cron(SCHEDULE, get_redis())
    jobs = {job.name: job for job in cron.get_jobs()}
    assert set(jobs) == {periodic.func for periodic in SCHEDULE}
    maintenance_job = jobs["app.jobs.maintenance.maintenance"]
    upcoming = maintenance_job.next_enqueue_time.astimezone(UTC)
    assert (upcoming.hour, upcoming.minute) == (3, 30)
    assert upcoming - utcnow() <= timedelta(days=1)
    rollup_job = jobs["app.usage.rollup.rollup"]
    assert rollup_job.next_enqueue_time.astimezone(UTC).minute == 7


def test_health_checks_check_live_deployments_with_check_steps(app, scripts):
    write_script("ok.sh", "echo fine\n")
    make_script_plan("checked", "- script: ok.sh\n  phases: [install, check]\n", one_per_user=False)
    make_script_plan("unchecked", "- script: ok.sh\n", one_per_user=False)
    user = make_user()
    live = issue("checked", user)
    engine.execute(live.id, worker="test")
    busy = issue("checked", user)
    engine.execute(busy.id, worker="test")
    issue("checked", user, phase="update", deployment_id=busy.deployment_id)  # in flight: left for next time
    plain = issue("unchecked", user)
    engine.execute(plain.id, worker="test")

    assert health_checks() == {"checks issued": 1, "busy": 1}
    (check,) = db.session.scalars(select(ServiceCommand).where(ServiceCommand.phase == "check")).all()
    assert check.deployment_id == live.deployment_id
    engine.execute(check.id, worker="test")
    deployment = reload(live).deployment
    assert deployment.health == Health.HEALTHY and deployment.checked_at is not None


def test_maintenance_shortens_old_logs_and_deletes_old_keys_and_runs(app, scripts):
    write_script("chatty.sh", "for i in $(seq 1 50); do echo line $i; done\n")
    make_script_plan("chatty", "- script: chatty.sh\n", one_per_user=False)
    user = make_user()
    old, recent = issue("chatty", user), issue("chatty", user)
    engine.execute(old.id, worker="test")
    engine.execute(recent.id, worker="test")
    long_ago = utcnow() - timedelta(days=100)
    db.session.execute(update(ServiceTask).where(ServiceTask.command_id == old.id).values(finished_at=long_ago))
    db.session.add(
        IdempotencyKey(
            user_id=user.id,
            key="old",
            request_sha256="0" * 64,
            status_code=201,
            response_body="{}",
            created_at=utcnow() - timedelta(days=8),
        )
    )
    db.session.add(
        IdempotencyKey(user_id=user.id, key="new", request_sha256="0" * 64, status_code=201, response_body="{}")
    )
    db.session.add(PeriodicRun(job="x", started_at=utcnow() - timedelta(days=31), outcome="ok"))
    db.session.commit()

    result = maintenance()
    assert result["task logs purged"] == 1 and result["idempotency keys deleted"] == 1
    assert result["periodic runs deleted"] == 1 and result["RQ registries"] == "cleaned"
    (old_task,) = reload(old).tasks
    (recent_task,) = reload(recent).tasks
    assert old_task.log.startswith(PURGED) and "line 50" in old_task.log and "line 1\n" not in old_task.log
    assert old_task.status == Status.COMPLETED and old_task.exit_code == 0  # the summary stays
    assert "line 1\n" in recent_task.log
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
    assert maintenance()["task logs purged"] == 0  # a summary is not purged again
