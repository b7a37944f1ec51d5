"""The engine, in process: steps run as tasks in order, with a clean environment, logs, outputs and failures."""

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import FailureReason, Health, ServiceCommand, ServiceDeployment, ServiceTask, Status
from app.ops import engine
from app.ops.commands import CommandRefused

from .engine_helpers import issue, make_script_plan, reload, tasks_of, write_script
from .factories import make_user
from .processes import is_running


@pytest.fixture
def user(app):
    return make_user(userid="jane", email="jane@example.com")


def run(command):
    status = engine.execute(command.id, worker="test")
    return reload(command), status


OUTPUT_SCRIPT = """
    import json, os
    with open(os.environ["OMEGAOPS_OUTPUT"], "w") as f:
        json.dump({"default": {"OMEGA_THING": os.environ["OMEGAOPS_PARAM_SIZE"]}}, f)
    print("provisioned")
"""


def test_install_runs_the_steps_and_merges_outputs_into_settings(scripts, user):
    write_script("out.py", OUTPUT_SCRIPT)
    write_script("second.sh", 'echo "step two for $OMEGAOPS_USER"\n')
    make_script_plan("svc", "- script: out.py\n- script: second.sh")
    command, status = run(issue("svc", user, params="size=3"))
    assert status is Status.COMPLETED and command.status is Status.COMPLETED
    deployment = command.deployment
    assert deployment.status is Status.COMPLETED
    assert deployment.settings == {"default": {"OMEGA_THING": "3"}}
    assert deployment.params == {"size": "3"}
    tasks = tasks_of(command.id)
    assert [(t.position, t.status, t.exit_code) for t in tasks] == [(1, Status.COMPLETED, 0), (2, Status.COMPLETED, 0)]
    assert "provisioned" in tasks[0].log and "step two for jane" in tasks[1].log
    assert tasks[0].started_at and tasks[0].finished_at and command.started_at and command.finished_at


ENV_DUMP = """
    import json, os
    with open(os.environ["OMEGAOPS_OUTPUT"], "w") as f:
        json.dump({"env": dict(os.environ), "cwd": os.getcwd()}, f)
"""


def test_scripts_get_a_clean_environment_with_ids_and_params(scripts, user, monkeypatch):
    monkeypatch.setenv("OMEGAOPS_SECRET_KEY", "must-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak-either")
    write_script("env.py", ENV_DUMP)
    make_script_plan("svc", "- script: env.py\n  params: region=eu,size=1", env='CLUSTER_ID: "c1"')
    command, _ = run(issue("svc", user, params="size=2,provider="))
    env = command.deployment.settings["env"]
    task = tasks_of(command.id)[0]
    assert env["CLUSTER_ID"] == "c1"
    assert env["OMEGAOPS_COMMAND_ID"] == str(command.id)
    assert env["OMEGAOPS_TASK_ID"] == str(task.id)
    assert env["OMEGAOPS_PHASE"] == "install"
    assert env["OMEGAOPS_USER"] == "jane"
    assert env["OMEGAOPS_DEPLOYMENT_ID"] == str(command.deployment_id)
    assert env["OMEGAOPS_PLAN"] == "svc"
    assert json.loads(env["OMEGAOPS_PARAMS"]) == {"region": "eu", "size": "2", "provider": ""}
    assert (env["OMEGAOPS_PARAM_SIZE"], env["OMEGAOPS_PARAM_REGION"], env["OMEGAOPS_PARAM_PROVIDER"]) == (
        "2",
        "eu",
        "",
    )
    assert "must-not-leak" not in json.dumps(env)
    assert env["HOME"] == command.deployment.settings["cwd"]
    assert not Path(command.deployment.settings["cwd"]).exists(), "the task's temp dir is removed"
    assert set(env) - {"PWD", "SHLVL", "_"} <= {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "CLUSTER_ID",
        "OMEGAOPS_COMMAND_ID",
        "OMEGAOPS_TASK_ID",
        "OMEGAOPS_PHASE",
        "OMEGAOPS_USER",
        "OMEGAOPS_DEPLOYMENT_ID",
        "OMEGAOPS_PLAN",
        "OMEGAOPS_PARAMS",
        "OMEGAOPS_OUTPUT",
        "OMEGAOPS_SETTINGS",
        "OMEGAOPS_STATE_DIR",
        "OMEGAOPS_PARAM_SIZE",
        "OMEGAOPS_PARAM_REGION",
        "OMEGAOPS_PARAM_PROVIDER",
    }


def test_user_input_never_reaches_a_shell(scripts, user, tmp_path):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    write_script("echo.sh", 'echo "x is: $OMEGAOPS_PARAM_X"\necho "all: $OMEGAOPS_PARAMS"\n')
    make_script_plan("svc", "- script: echo.sh")
    params = f"x=$(touch {marker});y=`touch {marker}`,z=`id`"
    command, status = run(issue("svc", user, params=params))
    assert status is Status.COMPLETED
    assert not marker.exists()
    log = tasks_of(command.id)[0].log
    assert f"x is: $(touch {marker});y=`touch {marker}`" in log
    assert "uid=" not in log


def test_a_failing_step_fails_the_command_and_later_steps_do_not_run(scripts, user, tmp_path):
    marker = tmp_path / "second-ran"
    write_script("fail.sh", "echo about to fail\nexit 3\n")
    write_script("second.sh", f"touch {marker}\n")
    make_script_plan("svc", "- script: fail.sh\n- script: second.sh")
    command, status = run(issue("svc", user))
    assert status is Status.FAILED
    assert command.failure_reason == FailureReason.SCRIPT_ERROR
    assert "step 1 (fail.sh)" in command.failure_detail and "code 3" in command.failure_detail
    assert command.deployment.status is Status.FAILED
    tasks = tasks_of(command.id)
    assert len(tasks) == 1 and tasks[0].status is Status.FAILED and tasks[0].exit_code == 3
    assert "about to fail" in tasks[0].log
    assert not marker.exists()


def test_a_timeout_kills_the_whole_process_group(scripts, user, tmp_path):
    pidfile = tmp_path / "child.pid"
    write_script("hang.sh", f"sleep 300 &\necho $! > {pidfile}\necho waiting\nwait\n")
    make_script_plan("svc", "- script: hang.sh\n  timeout: 1")
    command, status = run(issue("svc", user))
    assert status is Status.FAILED and command.failure_reason == FailureReason.TIMEOUT
    task = tasks_of(command.id)[0]
    assert task.failure_reason == FailureReason.TIMEOUT and "timed out after 1s" in task.log
    assert not is_running(int(pidfile.read_text()))


def test_children_left_behind_by_a_finished_script_are_killed(scripts, user, tmp_path):
    pidfile = tmp_path / "orphan.pid"
    write_script("leave.sh", f"sleep 300 > /dev/null 2>&1 &\necho $! > {pidfile}\nexit 0\n")
    make_script_plan("svc", "- script: leave.sh")
    _, status = run(issue("svc", user))
    assert status is Status.COMPLETED
    assert not is_running(int(pidfile.read_text()))


def test_a_long_log_keeps_its_head_and_tail_and_says_what_was_cut(scripts, user, app):
    app.config.update(TASK_LOG_HEAD=1000, TASK_LOG_TAIL=1000)
    write_script(
        "chatty.py", 'print("FIRST LINE")\nfor i in range(20000):\n    print("line", i)\nprint("LAST LINE")\n'
    )
    make_script_plan("svc", "- script: chatty.py")
    command, _ = run(issue("svc", user))
    log = tasks_of(command.id)[0].log
    assert log.startswith("FIRST LINE") and "LAST LINE" in log
    assert "characters cut" in log and len(log) < 2200


def test_secrets_from_params_and_settings_are_masked_in_logs(scripts, user):
    write_script(
        "leak.py",
        """
        import json, os
        params = json.loads(os.environ["OMEGAOPS_PARAMS"])
        print("password is", params["db_password"])
        out = {"default": {"OMEGA_MONGO_URL": "mongodb://jane:Zq9-generated-pw@mongo:27017/jane"}}
        print("url is", out["default"]["OMEGA_MONGO_URL"])
        json.dump(out, open(os.environ["OMEGAOPS_OUTPUT"], "w"))
        """,
    )
    make_script_plan("svc", "- script: leak.py")
    command, _ = run(issue("svc", user, params="db_password=hunter2-very-secret"))
    log = tasks_of(command.id)[0].log
    assert "hunter2-very-secret" not in log and "Zq9-generated-pw" not in log
    assert "password is ********" in log and "mongodb://jane:********@mongo" in log


@pytest.mark.parametrize("output", ["{not json", "[1, 2]"])
def test_invalid_output_json_fails_the_task(scripts, user, output):
    write_script("bad.sh", f"printf '%s' '{output}' > \"$OMEGAOPS_OUTPUT\"\n")
    make_script_plan("svc", "- script: bad.sh")
    command, status = run(issue("svc", user))
    assert status is Status.FAILED
    assert "$OMEGAOPS_OUTPUT" in command.failure_detail
    assert command.deployment.settings == {}


def test_a_step_is_retried_with_a_new_task_per_attempt(scripts, user):
    write_script(
        "flaky.sh",
        'n=$(cat "$OMEGAOPS_STATE_DIR/n" 2>/dev/null || echo 0)\n'
        'echo $((n + 1)) > "$OMEGAOPS_STATE_DIR/n"\n'
        '[ "$n" -ge 1 ] || { echo "first try fails"; exit 1; }\necho ok\n',
    )
    make_script_plan("svc", "- script: flaky.sh\n  retries: 2")
    command, status = run(issue("svc", user))
    assert status is Status.COMPLETED
    tasks = tasks_of(command.id)
    assert [(t.attempt, t.status) for t in tasks] == [(1, Status.FAILED), (2, Status.COMPLETED)]


def test_update_moves_to_the_newest_configuration_and_keeps_settings(scripts, user):
    write_script("out.py", OUTPUT_SCRIPT)
    make_script_plan("svc", "- script: out.py\n  phases: [install, update]")
    install, _ = run(issue("svc", user, params="size=1"))
    make_script_plan("svc", "- script: out.py\n  phases: [install, update]\n  timeout: 30")
    update, status = run(issue("svc", user, phase="update", params="size=4"))
    assert status is Status.COMPLETED
    deployment = update.deployment
    assert deployment.id == install.deployment_id and deployment.status is Status.COMPLETED
    assert deployment.configuration.version == 2
    assert deployment.params == {"size": "4"} and deployment.settings["default"]["OMEGA_THING"] == "4"


def test_uninstall_marks_the_deployment_removed_and_a_new_install_makes_a_new_one(scripts, user):
    write_script("noop.sh", "true\n")
    make_script_plan("svc", "- script: noop.sh\n  phases: [install, uninstall]")
    install, _ = run(issue("svc", user))
    uninstall, status = run(issue("svc", user, phase="uninstall"))
    assert status is Status.COMPLETED
    assert uninstall.deployment.status is Status.REMOVED and uninstall.deployment.removed_at
    again, _ = run(issue("svc", user))
    assert again.deployment_id != install.deployment_id and again.deployment.status is Status.COMPLETED
    assert reload(install.deployment).status is Status.REMOVED


@pytest.mark.parametrize("exit_code, health", [(0, Health.HEALTHY), (1, Health.UNHEALTHY)])
def test_check_records_health_without_changing_status(scripts, user, exit_code, health):
    write_script("noop.sh", "true\n")
    write_script("check.sh", f"echo checking\nexit {exit_code}\n")
    make_script_plan("svc", "- script: noop.sh\n- script: check.sh\n  phases: [check]")
    install, _ = run(issue("svc", user))
    assert len(tasks_of(install.id)) == 1, "check steps do not run on install"
    check, _ = run(issue("svc", user, phase="check"))
    deployment = check.deployment
    assert deployment.status is Status.COMPLETED
    assert deployment.health == health and deployment.checked_at is not None


def test_a_command_runs_once_however_often_it_is_executed(scripts, user):
    write_script("noop.sh", "true\n")
    make_script_plan("svc", "- script: noop.sh")
    command = issue("svc", user)
    assert engine.execute(command.id) is Status.COMPLETED
    assert engine.execute(command.id) is None
    assert len(tasks_of(command.id)) == 1


def test_cancel_before_start_fails_the_command_and_removes_the_install(scripts, user):
    write_script("noop.sh", "true\n")
    make_script_plan("svc", "- script: noop.sh")
    command = issue("svc", user)
    assert engine.request_cancel(command) == "cancelled"
    command = reload(command)
    assert command.status is Status.FAILED and command.failure_reason == FailureReason.CANCELLED
    assert command.deployment.status is Status.REMOVED
    assert engine.execute(command.id) is None, "a cancelled command is never claimed"
    with pytest.raises(CommandRefused, match="FAILED already"):
        engine.request_cancel(command)


def test_retry_issues_a_new_command_on_the_same_deployment(scripts, user, tmp_path):
    flag = tmp_path / "works"
    write_script("maybe.sh", f"[ -e {flag} ] || exit 1\n")
    make_script_plan("svc", "- script: maybe.sh")
    failed, _ = run(issue("svc", user))
    assert failed.status is Status.FAILED and failed.deployment.status is Status.FAILED
    flag.touch()
    again = engine.retry(failed)
    db.session.commit()
    assert again.retry_of_id == failed.id and again.deployment_id == failed.deployment_id
    again, status = run(again)
    assert status is Status.COMPLETED and again.deployment.status is Status.COMPLETED
    assert reload(failed).status is Status.FAILED, "history is kept"
    with pytest.raises(CommandRefused, match="only a FAILED command"):
        engine.retry(again)


def test_idempotency_key_returns_the_existing_command(scripts, user):
    write_script("noop.sh", "true\n")
    make_script_plan("svc", "- script: noop.sh")
    first = issue("svc", user, idempotency_key="k-1")
    second = issue("svc", user, idempotency_key="k-1")
    assert first.id == second.id
    assert db.session.scalar(select(func.count()).select_from(ServiceCommand)) == 1


def test_a_script_replaced_by_a_symlink_out_of_the_scripts_dir_is_refused_at_run_time(scripts, user, tmp_path):
    write_script("ok.sh", "true\n")
    make_script_plan("svc", "- script: ok.sh")
    outside = tmp_path / "evil.sh"
    outside.write_text("touch /tmp/should-not-run\n")
    (scripts / "ok.sh").unlink()
    (scripts / "ok.sh").symlink_to(outside)
    command, status = run(issue("svc", user))
    assert status is Status.FAILED and "outside the scripts directory" in command.failure_detail


def test_python_callable_steps_run_in_the_worker(app, user):
    from .factories import make_plan

    make_plan()
    command, status = run(issue("omegaml", user))
    assert status is Status.COMPLETED
    settings = command.deployment.settings["default"]
    assert settings["OMEGA_MONGO_URL"].startswith("mongodb://jane:") and settings["OMEGA_MONGO_URL"].endswith("/jane")
    assert settings["OMEGA_CELERY_CONFIG"]["BROKER_URL"].startswith("amqp://jane:")
    log = tasks_of(command.id)[0].log
    assert "provisioned database 'jane'" in log


def test_signup_issues_and_enqueues_the_omegaml_install(app, user):
    from pathlib import Path as P

    from app.jobs.provisioning import is_waiting
    from app.ops.specs import apply_specs, load_spec_files, spec_fallbacks

    apply_specs(
        load_spec_files(
            [P(__file__).parent.parent / "services"], app.config["SCRIPTS_DIR"], spec_fallbacks(app.config)
        )
    )
    db.session.commit()
    signup, status = run(issue("signup", user))
    assert status is Status.COMPLETED
    omegaml = db.session.scalar(select(ServiceCommand).where(ServiceCommand.id != signup.id))
    assert omegaml.plan.name == "omegaml" and omegaml.issuer_id is None and omegaml.status is Status.INITIATED
    assert is_waiting(omegaml.id), "enqueued once the signup task committed"
    omegaml, status = run(omegaml)
    assert status is Status.COMPLETED and "default" in omegaml.deployment.settings


def test_the_reaper_fails_commands_whose_worker_stopped_beating(scripts, user):
    from datetime import timedelta

    from app.models.types import utcnow

    write_script("noop.sh", "true\n")
    make_script_plan("svc", "- script: noop.sh")
    command = issue("svc", user)
    assert engine.claim(command.id, "ghost")
    command = reload(command)
    command.deployment.status = Status.PENDING
    task = ServiceTask(command=command, deployment_id=command.deployment_id, position=1, name="noop", step={})
    db.session.add(task)
    task.status = Status.PENDING
    command.heartbeat_at = task.heartbeat_at = utcnow() - timedelta(seconds=120)
    db.session.commit()
    assert engine.reap_lost(60) == 1
    command = reload(command)
    assert command.status is Status.FAILED and command.failure_reason == FailureReason.WORKER_LOST
    assert reload(task).status is Status.FAILED and reload(task).failure_reason == FailureReason.WORKER_LOST
    assert db.session.get(ServiceDeployment, command.deployment_id).status is Status.FAILED
    assert engine.reap_lost(60) == 0


def test_the_reaper_leaves_beating_commands_alone(scripts, user):
    write_script("noop.sh", "true\n")
    make_script_plan("svc", "- script: noop.sh")
    command = issue("svc", user)
    engine.claim(command.id, "alive")
    assert engine.reap_lost(60) == 0
    assert reload(command).status is Status.PENDING


def git(*args, cwd):
    import subprocess

    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "ops-repo"
    path.mkdir()
    git("init", "-q", "-b", "main", cwd=path)
    (path / "deploy").mkdir()
    (path / "deploy" / "install.sh").write_text('echo "from git v1"\n')
    git("add", ".", cwd=path)
    git("commit", "-q", "-m", "v1", cwd=path)
    return path


def head(path):
    import subprocess

    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True).stdout.strip()


def test_git_steps_run_the_commit_the_ref_named_when_the_command_started(app, scripts, user, repo):
    url = f"file://{repo}"
    app.config["SCRIPT_SOURCES"] = [f"file://{repo.parent}/"]
    make_script_plan("svc", f"- script: {{git: '{url}', ref: main, path: deploy/install.sh}}")
    v1 = head(repo)
    command, status = run(issue("svc", user))
    assert status is Status.COMPLETED
    task = tasks_of(command.id)[0]
    assert task.resolved == v1 and task.step["ref"] == "main"
    assert "from git v1" in task.log
    (repo / "deploy" / "install.sh").write_text('echo "from git v2"\n')
    git("commit", "-qam", "v2", cwd=repo)
    # uninstall has no steps here: it completes at once and frees the one-per-user plan for a new install
    assert engine.execute(issue("svc", user, phase="uninstall").id) is Status.COMPLETED
    again, _ = run(issue("svc", user))
    task = tasks_of(again.id)[0]
    assert task.resolved == head(repo) != v1 and "from git v2" in task.log


def test_git_sources_must_be_allowed(app, scripts, user, repo):
    app.config["SCRIPT_SOURCES"] = ["https://git.example.com/"]
    make_script_plan("svc", f"- script: {{git: 'file://{repo}', ref: main, path: deploy/install.sh}}")
    command, status = run(issue("svc", user))
    assert status is Status.FAILED and "allowed script sources" in command.failure_detail


def test_url_steps_check_the_sha256(app, scripts, user, tmp_path):
    import hashlib

    script = tmp_path / "remote.sh"
    script.write_text('echo "fetched by url"\n')
    good = hashlib.sha256(script.read_bytes()).hexdigest()
    app.config["SCRIPT_SOURCES"] = [f"file://{tmp_path}/"]
    make_script_plan("good", f"- script: {{url: 'file://{script}', sha256: '{good}'}}")
    command, status = run(issue("good", user))
    assert status is Status.COMPLETED and "fetched by url" in tasks_of(command.id)[0].log
    assert tasks_of(command.id)[0].resolved == good
    zeros = "0" * 64
    make_script_plan("bad", f"- script: {{url: 'file://{script}', sha256: '{zeros}'}}")
    command, status = run(issue("bad", user))
    assert status is Status.FAILED and "sha256 mismatch" in command.failure_detail


def test_a_failing_python_step_keeps_what_it_said_in_its_log(app, scripts, tmp_path):
    make_script_plan("flaky", "- task: tests.steps.fail_unless_flag\n  name: disk check\n", one_per_user=False)
    command = issue("flaky", make_user(), params=f"flag={tmp_path / 'fixed'}")
    engine.execute(command.id, worker="test")
    (task,) = tasks_of(command.id)
    assert task.status == Status.FAILED and task.failure_reason == "script error"
    assert task.log.startswith("checking the disk\n") and "RuntimeError: no space left on the disk" in task.log
