"""Faults the engine must survive, with real worker and scheduler processes and real Redis servers."""

import time

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from app.extensions import db
from app.jobs.periodic import dispatch_initiated
from app.jobs.provisioning import enqueue_command, execute_command
from app.jobs.queues import PERIODIC, PROVISIONING, get_queue
from app.models import FailureReason, ServiceCommand, ServiceTask, Status
from app.ops import engine

from .engine_helpers import make_script_plan, reload, write_script
from .factories import make_user
from .processes import Process, group_alive, wait_until
from .servers import RedisServer


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        process.stop()


def issue_many(n, plan="svc"):
    """n users, one install command each, committed (not enqueued)."""
    from .engine_helpers import issue

    return [issue(plan, make_user()).id for _ in range(n)]


def statuses(ids):
    db.session.expire_all()
    return {db.session.get(ServiceCommand, command_id).status for command_id in ids}


def counting_plan(tmp_path):
    """A plan whose script appends its command id to a file: the file tells how often each command ran."""
    runs = tmp_path / "runs.txt"
    write_script("count.sh", f'echo "$OMEGAOPS_COMMAND_ID" >> {runs}\n')
    make_script_plan("svc", "- script: count.sh")
    return runs


def test_a_worker_killed_mid_task_leaves_no_command_pending(app, scripts, processes, tmp_path):
    write_script("slow.sh", 'echo "started on $OMEGAOPS_USER"\nsleep 120\n')
    make_script_plan("svc", "- script: slow.sh")
    [command_id] = issue_many(1)
    assert enqueue_command(command_id)
    worker = Process(app, "worker", log=tmp_path / "worker.log")
    processes.append(worker)

    def running_task():
        db.session.expire_all()
        task = db.session.scalar(select(ServiceTask).where(ServiceTask.command_id == command_id))
        return task if task is not None and "started on" in (task.log or "") else None

    # the log streams into the database while the task runs
    task = wait_until(running_task, 30, message="task log readable while running")
    assert task.status is Status.PENDING and task.pgid
    worker.kill_tree()  # SIGKILL to the worker and its work horse, as when its machine dies
    killed_at = time.monotonic()

    # the reaper (a periodic job) notices the missing heartbeat; here it runs every half second
    lost_after = 3
    wait_until(lambda: engine.reap_lost(lost_after), 30, interval=0.5, message="reaped")
    assert time.monotonic() - killed_at < 120
    command = reload(db.session.get(ServiceCommand, command_id))
    assert command.status is Status.FAILED and command.failure_reason == FailureReason.WORKER_LOST
    task = reload(task)
    assert task.status is Status.FAILED and task.failure_reason == FailureReason.WORKER_LOST
    assert command.deployment.status is Status.FAILED
    assert db.session.scalar(select(func.count()).select_from(ServiceCommand).where(ServiceCommand.status == 1)) == 0
    # the orphaned script, in its own process group, was stopped by the reaper on this machine
    wait_until(lambda: not group_alive(task.pgid), 10, message="orphaned script stopped")


def test_commands_issued_while_redis_is_down_run_once_when_it_is_back(app, scripts, processes, tmp_path, runner):
    runs = counting_plan(tmp_path)
    redis = RedisServer()
    app.config["REDIS_URL"] = redis.url
    app.extensions["omegaops.redis"] = None
    port = redis.port
    redis.stop()
    users = [make_user() for _ in range(20)]
    for user in users:
        result = runner.invoke(args=["deployservice", "--phase", "install", "--service", "svc", "--user", user.userid])
        assert result.exit_code == 0, result.output
        assert "Redis is unreachable" in result.output
    ids = db.session.scalars(select(ServiceCommand.id)).all()
    assert len(ids) == 20 and statuses(ids) == {Status.INITIATED}

    redis = RedisServer(port=port)
    try:
        assert dispatch_initiated(min_age=0) == 20
        assert dispatch_initiated(min_age=0) == 0, "queued commands are not enqueued twice"
        worker = Process(app, "worker", "--burst", log=tmp_path / "worker.log")
        processes.append(worker)
        assert worker.wait(120) == 0, worker.output()
        assert statuses(ids) == {Status.COMPLETED}
        lines = runs.read_text().split()
        assert sorted(map(int, lines)) == sorted(ids), "each command ran exactly once"
        assert dispatch_initiated(min_age=0) == 0
    finally:
        redis.stop()


def test_two_workers_racing_run_each_command_once(app, scripts, processes, tmp_path):
    runs = counting_plan(tmp_path)
    ids = issue_many(30)
    queue = get_queue(PROVISIONING)
    for command_id in ids:
        assert enqueue_command(command_id)
        # the same command a second time, under another job id: both workers may pick one up
        queue.enqueue(execute_command, command_id, job_timeout=60)
    workers = [Process(app, "worker", "--burst", log=tmp_path / f"worker{n}.log") for n in (1, 2)]
    processes.extend(workers)
    for worker in workers:
        assert worker.wait(180) == 0, worker.output()
    assert statuses(ids) == {Status.COMPLETED}
    assert sorted(map(int, runs.read_text().split())) == sorted(ids)
    assert db.session.scalar(select(func.count()).select_from(ServiceTask)) == 30
    assert all("Job OK" in worker.output() for worker in workers), "both workers took part"


def test_a_second_scheduler_does_not_enqueue_twice_and_takes_over_when_the_first_dies(app, processes, tmp_path):
    connection = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(PERIODIC, connection=connection)

    def jobs_of(name):  # every periodic job is run_recorded(<its dotted path>)
        return sum(1 for job in queue.jobs if job.args and job.args[0].endswith(name))

    def dispatch_jobs():
        return jobs_of("dispatch_initiated")

    first = Process(app, "scheduler", "--lock-ttl", "3", log=tmp_path / "s1.log")
    processes.append(first)
    wait_until(lambda: dispatch_jobs() >= 1, 30, message="first dispatch enqueued")
    second = Process(app, "scheduler", "--lock-ttl", "3", log=tmp_path / "s2.log")
    processes.append(second)
    started = time.monotonic()
    time.sleep(11)
    elapsed = time.monotonic() - started
    # the dispatcher runs every 5s: one scheduler enqueues at most elapsed/5 + 1 of them, two would double that
    assert dispatch_jobs() <= int(elapsed / 5) + 2
    reaps = jobs_of("reap_lost_tasks")
    assert reaps == 1, "the 30s reaper was enqueued once, not once per scheduler"
    assert "standing by" in second.output() or "standing by" in first.output()

    first.kill()
    before = dispatch_jobs()
    wait_until(lambda: dispatch_jobs() > before, 30, message="the second scheduler took over")
    assert "leading" in second.output()
    connection.close()
