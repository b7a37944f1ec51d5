"""Resource names are one user's own: no userid and params make one user's deployment touch another's.

The omegaml plan names a MongoDB database, a RabbitMQ vhost and their users after the userid and the
qualifier (``app.ops.tasks.storage_name``); its script (services/scripts/omegaml/provision.py) creates,
grants and removes them; the worker plan's script (services/scripts/worker/worker.py) starts and stops
processes recorded in the deployment's own state directory. These tests try every combination of
userids and qualifiers that could meet, through the real engine and the shipped scripts, and settings
or pid files that name someone else's.
"""

import importlib.util
import itertools
import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ServiceDeployment, Status
from app.models.users import USERID_RE
from app.ops import engine
from app.ops.specs import apply_specs, parse_specs, spec_fallbacks
from app.ops.tasks import QUALIFIER_SEPARATOR, storage_name

from .engine_helpers import issue, make_script_plan, tasks_of
from .factories import make_user
from .test_service_scripts import PROVISION, SCRIPTS, SETTINGS, WORKER, Deployment, FakeRabbit, process_runs

ROOT = Path(__file__).resolve().parent.parent


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


provision = load_script(PROVISION, "provision_script")

# userids that look alike: each is valid (USERID_RE), and none may reach another's names
USERIDS = ["bob", "bobx", "bob-x", "bob.x", "bob_x", "bo", "b0b", "bob-default", "bob.dev", "xy"]
# what the shipped plans accept ([a-z][a-z0-9]{0,31}) and what a plan without declarations would pass on
QUALIFIERS = ["default", "x", "dev", "bob", "default2", "../bob", "x/y", "-x", ".dev", "x.y", "dev "]


def test_the_userids_are_valid_and_no_userid_holds_the_separator():
    assert all(USERID_RE.match(userid) for userid in USERIDS)
    assert not USERID_RE.match(f"bob{QUALIFIER_SEPARATOR}x")
    assert not USERID_RE.match(QUALIFIER_SEPARATOR + "bob")


def test_storage_names_are_one_to_one_and_each_belongs_to_its_user():
    seen: dict[str, tuple[str, str]] = {}
    for userid, qualifier in itertools.product(USERIDS, QUALIFIERS):
        name = storage_name(userid, qualifier)
        assert name not in seen, f"{(userid, qualifier)} and {seen[name]} both give {name!r}"
        seen[name] = (userid, qualifier)
        # the script's rule of ownership (it runs without the app) agrees with the names the app makes
        assert provision.owner(name) == userid
        assert provision.QUALIFIER_SEPARATOR == QUALIFIER_SEPARATOR
    assert len(seen) == len(USERIDS) * len(QUALIFIERS)


@pytest.mark.parametrize("qualifier", [f"{sep}x", f"x{sep}", f"a{sep}b"] if (sep := QUALIFIER_SEPARATOR) else [])
def test_a_qualifier_holding_the_separator_names_nothing(qualifier):
    with pytest.raises(ValueError, match="must not hold"):
        storage_name("bob", qualifier)


def test_the_shipped_plans_refuse_qualifiers_outside_their_pattern(app):
    from app.ops.commands import CommandRefused

    load_shipped(app)
    user = make_user(userid="bob")
    db.session.commit()
    for plan in ("omegaml", "worker"):
        for qualifier in ("../alice", "alice~x", f"bob{QUALIFIER_SEPARATOR}x", "Bob", "x" * 33, "a b", "a\0b"):
            with pytest.raises(CommandRefused) as refused:
                issue(plan, user, params=f"qualifier={qualifier}")
            assert refused.value.code == "invalid", (plan, qualifier)
            db.session.rollback()


# -- the omegaml plan through the engine, the shipped script and a RabbitMQ management API ------------


def load_shipped(app, **env):
    """Load services/omegaml.yaml and services/worker.yaml as `make run` does, scripts from services/scripts."""
    app.config["SCRIPTS_DIR"] = SCRIPTS
    plans = []
    for name in ("omegaml.yaml", "worker.yaml"):
        text = (ROOT / "services" / name).read_text()
        plans += parse_specs(text, name, SCRIPTS, spec_fallbacks(app.config), environ={**env, "CLUSTER_ID": "t"})
    apply_specs(plans)
    db.session.commit()


def run(command) -> Status:
    return engine.execute(command.id, worker="test")


def changed_names(requests: list) -> set[str]:
    """Every vhost and user (``vhosts:<name>``, ``users:<name>``) a PUT or DELETE of the management API named."""
    names = set()
    for method, path, _ in requests:
        if method not in ("PUT", "DELETE"):
            continue
        kind, *segments = [unquote(segment) for segment in path.removeprefix("/api/").split("/")]
        if kind == "permissions":  # permissions/<vhost>/<user>
            names |= {f"vhosts:{segments[0]}", f"users:{segments[1]}"}
        else:
            names.add(f"{kind}:{segments[0]}")
    return names


@pytest.fixture
def rabbit():
    server = FakeRabbit()
    yield server
    server.close()


def test_no_user_and_qualifier_creates_grants_or_deletes_another_users_names(app, rabbit):
    load_shipped(app, RABBITMQ_ADMIN_URL=rabbit.url())
    users = {userid: make_user(userid=userid) for userid in ("bob", "bob-x", "bobx", "xy")}
    db.session.commit()
    installs = {"bob": ["default", "x", "default2"], "bob-x": ["default", "dev"], "bobx": ["default"], "xy": ["bob"]}
    touched: dict[str, set[str]] = {}
    for userid, qualifiers in installs.items():
        for n, qualifier in enumerate(qualifiers):
            command = issue(
                "omegaml", users[userid], phase="update" if n else "install", params=f"qualifier={qualifier}"
            )
            before = len(rabbit.requests)
            assert run(command) is Status.COMPLETED, [task.log for task in tasks_of(command.id)]
            touched.setdefault(userid, set()).update(changed_names(rabbit.requests[before:]))

    for userid, names in touched.items():
        for name in names:
            _, _, value = name.partition(":")
            assert provision.owner(value) == userid, f"{userid}'s command touched {name}"
        expected = {f"vhosts:{storage_name(userid, q)}" for q in installs[userid]}
        assert expected <= names

    # every user uninstalls: each removes its own vhosts and user, and nothing of anyone else's
    for userid, user in users.items():
        before = len(rabbit.requests)
        assert run(issue("omegaml", user, phase="uninstall")) is Status.COMPLETED
        removed = changed_names(rabbit.requests[before:])
        assert removed == {f"vhosts:{storage_name(userid, q)}" for q in installs[userid]} | {f"users:{userid}"}


# -- settings that name someone else's: the script refuses before calling any server -----------------


def foreign(qualifier: str, field: str, value: str) -> dict:
    """SETTINGS (alice's) with one name in one qualifier replaced by ``value``."""
    settings = json.loads(json.dumps(SETTINGS))
    config = settings[qualifier]
    mongo, broker = config["OMEGA_MONGO_URL"], config["OMEGA_CELERY_CONFIG"]["BROKER_URL"]
    if field == "db":
        config["OMEGA_MONGO_URL"] = mongo.rsplit("/", 1)[0] + "/" + value
    elif field == "mongo_user":
        config["OMEGA_MONGO_URL"] = mongo.replace("mongodb://alice:", f"mongodb://{value}:")
    elif field == "authdb":
        config["OMEGA_MONGO_URL"] = mongo + f"?authSource={value}"
    elif field == "vhost":
        config["OMEGA_CELERY_CONFIG"]["BROKER_URL"] = broker.rsplit("/", 1)[0] + "/" + value
    elif field == "broker_user":
        config["OMEGA_CELERY_CONFIG"]["BROKER_URL"] = broker.replace("amqp://alice:", f"amqp://{value}:")
    return settings


FOREIGN = [
    ("default", "db", "bob"),
    ("dev", "db", "alice-dev"),  # user alice-dev's own default database, not alice's qualifier dev
    ("dev", "db", "alicex~dev"),
    ("dev", "db", "~alice"),
    ("default", "mongo_user", "bob"),
    ("default", "authdb", "bob"),
    ("dev", "vhost", "bob~dev"),
    ("dev", "vhost", "%2F"),
    ("default", "vhost", "alice.x"),
    ("default", "broker_user", "bob"),
]


@pytest.mark.parametrize("phase", ["install", "update", "uninstall", "check"])
@pytest.mark.parametrize(("qualifier", "field", "value"), FOREIGN)
def test_settings_naming_another_users_resources_fail_before_any_server_is_called(
    tmp_path, rabbit, phase, qualifier, field, value
):
    mongosh_ran = tmp_path / "mongosh-ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mongosh").write_text(f"#!/bin/sh\ntouch {shlex.quote(str(mongosh_ran))}\n")
    (bin_dir / "mongosh").chmod(0o755)
    deployment = Deployment(
        tmp_path,
        PROVISION,
        "omegaml",
        settings=foreign(qualifier, field, value),
        env={"RABBITMQ_ADMIN_URL": rabbit.url(), "MONGO_ADMIN_URL": "mongodb://admin:pw@127.0.0.1:1/admin"},
    )

    result = deployment.run(phase, path=f"{bin_dir}:/usr/bin:/bin")

    assert result.code == 1, result.text
    assert "is not user 'alice''s own" in result.stderr or "not a mongodb" in result.stderr, result.stderr
    assert rabbit.requests == []
    assert not mongosh_ran.exists()


def test_the_script_refuses_to_run_without_the_userid(rabbit):
    for userid in ("", f"alice{QUALIFIER_SEPARATOR}x"):
        with pytest.raises(provision.Failure, match="OMEGAOPS_USER"):
            provision.provision("install", SETTINGS, {"RABBITMQ_ADMIN_URL": rabbit.url(), "OMEGAOPS_USER": userid})
    assert rabbit.requests == []


# -- worker processes: a pid file is obeyed only for a process of this deployment --------------------


def test_a_pid_file_naming_another_deployments_worker_is_never_obeyed(tmp_path):
    # alice's deployment 7 runs a worker; bob's deployment 42 finds a pid file naming it (its workers run
    # with HOME inside the state directory, so their code could write one) and uninstalls
    other = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={"PATH": "/usr/bin:/bin", "OMEGAOPS_DEPLOYMENT_ID": "7"},
        start_new_session=True,
    )
    try:
        started = Path(f"/proc/{other.pid}/stat").read_text()
        start = started[started.rfind(")") + 2 :].split()[19]
        bob = Deployment(tmp_path, WORKER, "worker", env={"WORKER_COMMAND": ""})
        (bob.state_dir / "worker-1.pid").write_text(
            json.dumps({"index": 1, "pid": other.pid, "start": start, "host": socket.gethostname()})
        )
        for phase in ("check", "update", "uninstall"):
            result = bob.run(phase, {"size": "0"} if phase == "update" else None)
            assert process_runs(other.pid), (phase, result.text)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_the_worker_script_needs_the_deployment_id(tmp_path):
    worker = load_script(WORKER, "worker_script")
    for deployment in ("", "../7"):
        environ = {"OMEGAOPS_STATE_DIR": str(tmp_path), "OMEGAOPS_DEPLOYMENT_ID": deployment}
        with pytest.raises(worker.Usage, match="OMEGAOPS_DEPLOYMENT_ID"):
            worker.run("install", environ)


def test_each_deployment_has_its_own_state_directory_whatever_its_params(app, scripts):
    # the state directory is named by the deployment's id only: no userid or param reaches the path
    (scripts / "echo.sh").write_text('printf \'{"dir": "%s"}\' "$OMEGAOPS_STATE_DIR" > "$OMEGAOPS_OUTPUT"\n')
    make_script_plan(
        "echo",
        """
        - script: echo.sh
          params: qualifier=default
          phases: [install, update]
        """,
        parameters="",
    )
    dirs = {}
    for userid, qualifier in (("bob", "../alice"), ("alice", "default"), ("bob-x", "/tmp")):
        user = make_user(userid=userid)
        db.session.commit()
        command = issue("echo", user, params=f"qualifier={qualifier}")
        assert run(command) is Status.COMPLETED, [task.log for task in tasks_of(command.id)]
        deployment = db.session.scalar(select(ServiceDeployment).where(ServiceDeployment.user_id == user.id))
        db.session.refresh(deployment)
        dirs[userid] = Path(deployment.settings["dir"])
        assert dirs[userid] == Path(app.config["INSTANCE_DIR"]) / "state" / f"deployment-{deployment.id}"
    assert len(set(dirs.values())) == 3
