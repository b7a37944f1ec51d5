"""The management CLI: the original's commands and flags; bad input exits non-zero with one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ServiceCommand, ServiceConfiguration, ServiceDeployment, ServicePlan, Status, User

from .factories import make_plan, make_user

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL = ROOT / "tests" / "specs" / "original-format.yaml"  # the original format, kept with the tests
SHIPPED = ROOT / "services"


def invoke(runner, *args, input=None):
    result = runner.invoke(args=list(args), input=input)
    assert "Traceback" not in result.output
    return result


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


# createservice


def test_createservice_loads_the_original_format_unchanged(runner):
    result = invoke(runner, "createservice", "--specs", str(ORIGINAL))
    assert result.exit_code == 0, result.output
    assert "signup: created (configuration v1)" in result.output
    assert "omegaml: created (configuration v1)" in result.output
    signup = ServicePlan.by_name("signup").current_configuration
    assert [s.target for s in signup.steps] == ["app.ops.tasks.user_signup"]
    assert signup.env == {"CLUSTER_ID": "local"}


def test_createservice_twice_is_a_no_op(runner):
    assert invoke(runner, "createservice", "--specs", str(SHIPPED)).exit_code == 0
    before = count(ServiceConfiguration)
    result = invoke(runner, "createservice", "--specs", str(SHIPPED))
    assert result.exit_code == 0
    assert "omegaml: unchanged (configuration v1)" in result.output
    assert count(ServiceConfiguration) == before


def test_createservice_changed_steps_make_a_new_version(runner, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("- plan: worker\n  steps:\n    - task: app.ops.tasks.deploy_user_service\n")
    assert invoke(runner, "createservice", "--specs", str(spec)).exit_code == 0
    spec.write_text("- plan: worker\n  steps:\n    - task: app.ops.tasks.deploy_user_service\n      timeout: 30\n")
    result = invoke(runner, "createservice", "--specs", str(spec))
    assert "worker: updated (configuration v2)" in result.output
    plan = ServicePlan.by_name("worker")
    assert [c.version for c in plan.configurations] == [1, 2]
    assert plan.current_configuration.steps[0].timeout == 30


def test_createservice_invalid_file_writes_nothing(runner, tmp_path):
    good = tmp_path / "a.yaml"
    good.write_text("- plan: good\n  steps: []\n")
    bad = tmp_path / "b.yaml"
    bad.write_text("- plan: bad\n  steps:\n    - task: app.ops.tasks.deploy_user_service\n      timeout: soon\n")
    result = invoke(runner, "createservice", "--specs", str(good), "--specs", str(bad))
    assert_one_line_error(result, "plan 'bad'", "step 1", "timeout")
    assert count(ServicePlan) == 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--specs", "/nonexistent.yaml"], "no such file"),
        ([], "Missing option '--specs'"),
    ],
)
def test_createservice_bad_arguments(runner, args, fragment):
    result = invoke(runner, "createservice", *args)
    assert result.exit_code != 0
    assert fragment in result.output


# deployservice


@pytest.fixture
def deployable(app):
    make_plan()
    return make_user(email="jane@example.com", userid="jane")


def test_deployservice_records_an_initiated_command(runner, deployable):
    result = invoke(
        runner,
        "deployservice",
        "--phase",
        "install",
        "--service",
        "omegaml",
        "--user",
        "jane",
        "--params",
        "size=2,provider=",
    )
    assert result.exit_code == 0, result.output
    command = db.session.scalar(select(ServiceCommand))
    assert f"command {command.id}" in result.output and "INITIATED" in result.output
    assert command.status is Status.INITIATED
    assert command.params == {"size": "2", "provider": ""}
    assert command.deployment.status is Status.INITIATED


def test_deployservice_accepts_email_and_prints_json(runner, deployable):
    result = invoke(
        runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "JANE@example.com", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "0" and data["user"] == "jane" and data["phase"] == "install"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--phase", "install", "--service", "nope", "--user", "jane"], ["no service plan named 'nope'"]),
        (["--phase", "install", "--service", "omegaml", "--user", "ghost"], ["no user 'ghost'"]),
        (["--phase", "boom", "--service", "omegaml", "--user", "jane"], ["unknown phase 'boom'"]),
        (["--phase", "install", "--service", "omegaml", "--user", "jane", "--params", "a=1,,b"], ["item 2 is empty"]),
        (["--phase", "install", "--service", "omegaml", "--user", "jane", "--params", "novalue"], ["key=value"]),
        (["--phase", "update", "--service", "omegaml", "--user", "jane"], ["has no deployment of 'omegaml'"]),
        (["--phase", "check", "--service", "omegaml", "--user", "jane"], ["has no deployment"]),
    ],
)
def test_deployservice_bad_input_exits_with_one_line(runner, deployable, args, fragments):
    result = invoke(runner, "deployservice", *args)
    assert_one_line_error(result, *fragments)
    assert count(ServiceCommand) == 0
    assert count(ServiceDeployment) == 0


def test_deployservice_refuses_a_second_install_of_a_one_per_user_plan(runner, deployable):
    assert (
        invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane").exit_code == 0
    )
    result = invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    assert_one_line_error(result, "already has deployment")
    assert count(ServiceDeployment) == 1


def test_deployservice_refuses_a_command_while_one_is_in_flight(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    result = invoke(runner, "deployservice", "--phase", "uninstall", "--service", "omegaml", "--user", "jane")
    assert_one_line_error(result, "is still INITIATED")


def test_deployservice_update_after_install_completed(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    command = db.session.scalar(select(ServiceCommand))
    command.status = Status.PENDING
    command.status = Status.COMPLETED
    command.deployment.status = Status.PENDING
    command.deployment.status = Status.COMPLETED
    db.session.commit()
    result = invoke(
        runner, "deployservice", "--phase", "update", "--service", "omegaml", "--user", "jane", "--params", "size=4"
    )
    assert result.exit_code == 0, result.output
    update = db.session.scalars(select(ServiceCommand).order_by(ServiceCommand.id.desc())).first()
    assert update.phase == "update" and update.deployment_id == command.deployment_id


def test_deployservice_check_needs_check_steps(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    command = db.session.scalar(select(ServiceCommand))
    command.status = Status.PENDING
    command.status = Status.COMPLETED
    db.session.commit()
    result = invoke(runner, "deployservice", "--phase", "check", "--service", "omegaml", "--user", "jane")
    assert_one_line_error(result, "has no check steps")


def test_deployservice_internal_plans_are_allowed_for_operators(runner, app):
    invoke(runner, "createservice", "--specs", str(SHIPPED))
    make_user(userid="newbie")
    result = invoke(runner, "deployservice", "--phase", "install", "--service", "signup", "--user", "newbie")
    assert result.exit_code == 0, result.output


# deleteservice


def test_deleteservice_deletes_a_plan_never_deployed(runner, app):
    make_plan(name="unused")
    result = invoke(runner, "deleteservice", "--service", "unused")
    assert result.exit_code == 0 and "unused: deleted" in result.output
    assert ServicePlan.by_name("unused") is None
    assert count(ServiceConfiguration) == 0


def test_deleteservice_refuses_while_deployed_and_lists_the_deployments(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    result = invoke(runner, "deleteservice", "--service", "omegaml")
    assert_one_line_error(result, "1 live deployment", "(jane, INITIATED)", "--force")
    assert ServicePlan.by_name("omegaml").active


def test_deleteservice_force_retires_and_keeps_history(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    result = invoke(runner, "deleteservice", "--service", "omegaml", "--force")
    assert result.exit_code == 0 and "retired" in result.output
    plan = ServicePlan.by_name("omegaml")
    assert not plan.active and not plan.offered and plan.retired_at is not None
    assert count(ServiceCommand) == 1 and count(ServiceDeployment) == 1
    result = invoke(
        runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", make_user().userid
    )
    assert_one_line_error(result, "retired")


def test_deleteservice_unknown_plan(runner, app):
    assert_one_line_error(invoke(runner, "deleteservice", "--service", "nope"), "no service plan named 'nope'")


def test_createservice_reactivates_a_retired_plan(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    invoke(runner, "deleteservice", "--service", "omegaml", "--force")
    spec = Path(runner.app.config["INSTANCE_DIR"]) / "o.yaml"
    spec.write_text("- plan: omegaml\n  offered: true\n  steps:\n    - task: app.ops.tasks.deploy_user_service\n")
    # retiring is an operator's decision: a plain load does not undo it silently
    result = invoke(runner, "createservice", "--specs", str(spec))
    assert result.exit_code == 1 and "retired → active" in result.output
    assert not ServicePlan.by_name("omegaml").active
    result = invoke(runner, "createservice", "--specs", str(spec), "--overwrite")
    assert "omegaml: updated" in result.output or "omegaml: reactivated" in result.output
    assert ServicePlan.by_name("omegaml").active


# listservices


def test_listservices_lists_plans_and_versions(runner, app):
    invoke(runner, "createservice", "--specs", str(SHIPPED))
    result = invoke(runner, "listservices")
    assert result.exit_code == 0
    assert "omegaml" in result.output and "signup" in result.output and "v1" in result.output
    data = json.loads(invoke(runner, "listservices", "--json").output)
    assert {p["name"]: p["current"] for p in data["plans"]} == {"omegaml": 1, "signup": 1, "worker": 1}


def test_listservices_for_a_user(runner, deployable):
    invoke(runner, "deployservice", "--phase", "install", "--service", "omegaml", "--user", "jane")
    result = invoke(runner, "listservices", "--user", "jane@example.com")
    assert "omegaml" in result.output and "INITIATED" in result.output
    data = json.loads(invoke(runner, "listservices", "--user", "jane", "--json").output)
    assert data["deployments"][0]["service"] == "omegaml"
    assert_one_line_error(invoke(runner, "listservices", "--user", "ghost"), "no user 'ghost'")


# createadmin


def test_createadmin_with_password_on_stdin(runner, app):
    result = invoke(
        runner, "createadmin", "--email", "boss@example.com", "--password-stdin", input="a-long-password\n"
    )
    assert result.exit_code == 0, result.output
    user = User.find("boss@example.com")
    assert user.admin and user.check_password("a-long-password") and user.userid == "boss"


def test_createadmin_prompts_for_the_password(runner, app):
    result = invoke(
        runner,
        "createadmin",
        "--email",
        "p@example.com",
        "--userid",
        "prompted",
        input="a-long-password\na-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert User.find("prompted").check_password("a-long-password")


def test_createadmin_generated_password_is_printed_once_and_works(runner, app):
    result = invoke(runner, "createadmin", "--email", "g@example.com", "--generate-password")
    password = result.output.split("password: ", 1)[1].split()[0]
    assert User.find("g@example.com").check_password(password)


def test_createadmin_if_none_does_nothing_when_an_admin_exists(runner, app):
    make_user(admin=True)
    result = invoke(runner, "createadmin", "--if-none", "--email", "second@example.com", "--generate-password")
    assert result.exit_code == 0 and "nothing to do" in result.output
    assert User.find("second@example.com") is None


def test_createadmin_promotes_an_existing_user(runner, app):
    user = make_user(email="u@example.com")
    result = invoke(runner, "createadmin", "--email", "u@example.com")
    assert result.exit_code == 0 and "promoted" in result.output
    db.session.refresh(user)
    assert user.admin


@pytest.mark.parametrize(
    "args, stdin, fragment",
    [
        (["--email", "not-an-email", "--password-stdin"], "a-long-password\n", "invalid email"),
        (["--email", "s@example.com", "--password-stdin"], "short\n", "at least 8"),
        (
            ["--email", "c@example.com", "--userid", "has:colon", "--password-stdin"],
            "a-long-password\n",
            "invalid userid",
        ),
    ],
)
def test_createadmin_bad_input(runner, app, args, stdin, fragment):
    assert_one_line_error(invoke(runner, "createadmin", *args, input=stdin), fragment)
    assert count(User) == 0


def test_real_flask_command_exits_with_one_line_and_no_traceback(tmp_path, redis_url):
    """Through the installed `flask` entry point, as an operator runs it, on a database never migrated."""
    env = {
        **os.environ,
        "FLASK_APP": "wsgi",
        "OMEGAOPS_ENV": "test",
        "OMEGAOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "OMEGAOPS_REDIS_URL": redis_url,
    }
    flask = Path(sys.executable).parent / "flask"
    done = subprocess.run([str(flask), "listservices"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "flask db upgrade" in done.stderr
