"""Whole flows through real worker processes: `deployservice --wait`, cancelling a running command."""

import subprocess

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import FailureReason, ServiceCommand, ServiceTask, Status

from .engine_helpers import make_script_plan, reload, write_script
from .factories import make_user
from .processes import FLASK, ROOT, Process, group_alive, process_env, wait_until


@pytest.fixture
def worker(app, scripts, tmp_path):
    process = Process(app, "worker", log=tmp_path / "worker.log")
    yield process
    process.stop()


def flask(app, *args, timeout=120):
    return subprocess.run(
        [FLASK, *args], cwd=ROOT, env=process_env(app), capture_output=True, text=True, timeout=timeout
    )


def test_deployservice_wait_follows_the_command_to_completion(app, scripts, worker):
    write_script("one.sh", 'echo "hello from step one"\n')
    write_script(
        "two.py", 'import time\nfor i in range(3):\n    print("working", i, flush=True)\n    time.sleep(0.6)\n'
    )
    make_script_plan("svc", "- script: one.sh\n- script: two.py")
    make_user(userid="jane")
    done = flask(app, "deployservice", "--phase", "install", "--service", "svc", "--user", "jane", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "step 1/2 one.sh: COMPLETED" in out
    assert "step 2/2 two.py: PENDING" in out and "step 2/2 two.py: COMPLETED" in out
    assert "| hello from step one" in out and "| working 2" in out
    assert out.strip().endswith("COMPLETED")


def test_deployservice_wait_exits_non_zero_with_the_reason_when_it_fails(app, scripts, worker):
    write_script("bad.sh", 'echo "no luck"\nexit 4\n')
    make_script_plan("svc", "- script: bad.sh")
    make_user(userid="jane")
    done = flask(app, "deployservice", "--phase", "install", "--service", "svc", "--user", "jane", "--wait")
    assert done.returncode == 1
    assert "| no luck" in done.stdout
    assert done.stderr.strip().startswith("Error: command 1 FAILED: script error: step 1 (bad.sh) failed")
    assert "Traceback" not in done.stderr


def test_cancelling_a_running_command_kills_its_script(app, scripts, worker, runner):
    write_script("slow.sh", 'echo "started"\nsleep 120\n')
    make_script_plan("svc", "- script: slow.sh")
    make_user(userid="jane")
    result = runner.invoke(args=["deployservice", "--phase", "install", "--service", "svc", "--user", "jane"])
    assert result.exit_code == 0, result.output

    def running():
        db.session.expire_all()
        task = db.session.scalar(select(ServiceTask))
        return task if task is not None and "started" in (task.log or "") else None

    task = wait_until(running, 30, message="script running")
    result = runner.invoke(args=["cancelcommand", "1"])
    assert result.exit_code == 0 and "cancel requested" in result.output
    command = wait_until(
        lambda: (c := reload(db.session.get(ServiceCommand, 1))).status.is_final and c, 30, message="cancelled"
    )
    assert command.status is Status.FAILED and command.failure_reason == FailureReason.CANCELLED
    assert reload(task).failure_reason == FailureReason.CANCELLED
    assert command.deployment.status is Status.FAILED
    assert not group_alive(task.pgid)
    result = runner.invoke(args=["cancelcommand", "1"])
    assert result.exit_code == 1 and "FAILED already" in result.output


def test_retrycommand_reruns_a_failed_command(app, scripts, worker, runner, tmp_path):
    flag = tmp_path / "fixed"
    write_script("maybe.sh", f"[ -e {flag} ] || {{ echo broken; exit 1; }}\necho fine\n")
    make_script_plan("svc", "- script: maybe.sh")
    make_user(userid="jane")
    first = flask(app, "deployservice", "--phase", "install", "--service", "svc", "--user", "jane", "--wait")
    assert first.returncode == 1
    flag.touch()
    again = flask(app, "retrycommand", "1", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "command 2: retry of command 1" in again.stdout and "| fine" in again.stdout
    unknown = flask(app, "retrycommand", "99")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "Error: no command 99"
