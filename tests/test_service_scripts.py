"""The shipped service scripts, run as the engine runs them: a clean environment, a fresh working
directory, the outputs in $OMEGAOPS_OUTPUT, a state directory kept across commands. No app needed."""

import base64
import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from app.ops.engine import deep_merge

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "services" / "scripts"
PROVISION = SCRIPTS / "omegaml" / "provision.py"
WORKER = SCRIPTS / "worker" / "worker.py"
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"

PASSWORD = "Xq7-user-secret_9"
ADMIN_PASSWORD = "rabbit-admin-secret"
SETTINGS = {
    "default": {
        "OMEGA_MONGO_URL": f"mongodb://alice:{PASSWORD}@mongo:27017/alice",
        "OMEGA_CELERY_CONFIG": {
            "BROKER_URL": f"amqp://alice:{PASSWORD}@rabbit:5672/alice",
            "CELERY_DEFAULT_QUEUE": "default",
        },
        "OMEGA_MONGO_SSL_KWARGS": {"tls": False},
        "OMEGA_USERID": "alice",
        "OMEGA_QUALIFIER": "default",
    },
    # a vhost with a slash: the management API must get it as one quoted path segment
    "dev": {
        "OMEGA_MONGO_URL": f"mongodb://alice:{PASSWORD}@mongo:27017/alice~dev",
        "OMEGA_CELERY_CONFIG": {"BROKER_URL": f"amqp://alice:{PASSWORD}@rabbit:5672/alice~dev%2F1"},
        "OMEGA_USERID": "alice",
        "OMEGA_QUALIFIER": "dev",
    },
    "omegaml_command_id": 7,  # not a qualifier
}
PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    output: dict | None

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


class Deployment:
    """One deployment whose commands run a script as the engine does; its settings and state dir persist."""

    def __init__(self, tmp_path: Path, script: Path, plan: str, settings: dict | None = None, env=None):
        self.tmp_path, self.script, self.plan = tmp_path, script, plan
        self.settings = json.loads(json.dumps(settings or {}))
        self.env = dict(env or {})
        self.state_dir = tmp_path / "state"
        self.state_dir.mkdir()
        self.count = 0

    def run(self, phase: str, params: dict | None = None, env: dict | None = None, path: str = CLEAN_PATH) -> Run:
        self.count += 1
        workdir = self.tmp_path / f"task-{self.count}"
        workdir.mkdir()
        output = self.tmp_path / f"output-{self.count}.json"
        params = params or {}
        environ = {
            "PATH": path,
            "HOME": str(workdir),
            "LANG": "C.UTF-8",
            **self.env,
            **(env or {}),
            "OMEGAOPS_COMMAND_ID": str(100 + self.count),
            "OMEGAOPS_TASK_ID": str(200 + self.count),
            "OMEGAOPS_PHASE": phase,
            "OMEGAOPS_USER": "alice",
            "OMEGAOPS_DEPLOYMENT_ID": "42",
            "OMEGAOPS_PLAN": self.plan,
            "OMEGAOPS_PARAMS": json.dumps(params),
            "OMEGAOPS_OUTPUT": str(output),
            "OMEGAOPS_SETTINGS": json.dumps(self.settings),
            "OMEGAOPS_STATE_DIR": str(self.state_dir),
        }
        for key, value in params.items():
            environ["OMEGAOPS_PARAM_" + re.sub(r"[.-]", "_", key).upper()] = value
        done = subprocess.run(
            [sys.executable, str(self.script)],
            cwd=workdir,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
            start_new_session=True,
        )
        result = json.loads(output.read_text()) if output.exists() else None
        if done.returncode == 0 and result:
            self.settings = deep_merge(self.settings, result)
        return Run(done.returncode, done.stdout, done.stderr, result)


def assert_one_line_failure(run: Run, *fragments: str) -> None:
    assert run.code != 0, run.text
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.text
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert run.output is None


# -- omegaml: provision.py ------------------------------------------------------------------------


class FakeRabbit:
    """The RabbitMQ management API, enough of it: vhosts, users and permissions, behind basic auth."""

    def __init__(self, user="admin", password=ADMIN_PASSWORD):
        self.expected_auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[tuple[str, str, object]] = []
        self.resources: set[str] = set()
        self.failures: dict[tuple[str, str], int] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self)

            def do_PUT(self):
                fake.handle(self)

            def do_DELETE(self):
                fake.handle(self)

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, user="admin", password=ADMIN_PASSWORD) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        method, path = request.command, request.path
        self.requests.append((method, path, body))
        if request.headers.get("Authorization") != self.expected_auth:
            return self.answer(request, 401, {"error": "not_authorized", "reason": "Login failed"})
        if (method, path) in self.failures:
            return self.answer(request, self.failures[method, path], {"error": "boom", "reason": "disk\nfull"})
        if method == "PUT":
            existed = path in self.resources
            self.resources.add(path)
            return self.answer(request, 204 if existed else 201, None)
        if method == "DELETE":
            if path not in self.resources:
                return self.answer(request, 404, {"error": "Object Not Found", "reason": "Not Found"})
            self.resources.discard(path)
            if path.startswith("/api/vhosts/"):  # as RabbitMQ does: permissions go with their vhost
                vhost = path.removeprefix("/api/vhosts/")
                self.resources -= {p for p in self.resources if p.startswith(f"/api/permissions/{vhost}/")}
            return self.answer(request, 204, None)
        if path in self.resources:
            return self.answer(request, 200, {"name": path.rsplit("/", 1)[-1]})
        return self.answer(request, 404, {"error": "Object Not Found", "reason": "Not Found"})

    @staticmethod
    def answer(request, status, payload):
        data = json.dumps(payload).encode() if payload is not None else b""
        request.send_response(status)
        if data:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)


@pytest.fixture
def rabbit():
    server = FakeRabbit()
    yield server
    server.close()


@pytest.fixture
def omegaml(tmp_path):
    return Deployment(tmp_path, PROVISION, "omegaml", settings=SETTINGS)


def install_requests() -> list:
    user = {"password": PASSWORD, "tags": ""}
    return [
        ("PUT", "/api/vhosts/alice", {}),
        ("PUT", "/api/users/alice", user),
        ("PUT", "/api/permissions/alice/alice", PERMISSIONS),
        ("PUT", "/api/vhosts/alice~dev%2F1", {}),
        ("PUT", "/api/users/alice", user),
        ("PUT", "/api/permissions/alice~dev%2F1/alice", PERMISSIONS),
    ]


def test_provision_without_admin_urls_says_so_succeeds_and_records_not_configured(omegaml):
    run = omegaml.run("install")

    assert run.code == 0, run.text
    assert "MONGO_ADMIN_URL is not configured: the MongoDB user alice for database alice was not created" in run.stdout
    assert "the MongoDB user alice for database alice~dev was not created" in run.stdout
    assert "RABBITMQ_ADMIN_URL is not configured: the RabbitMQ vhost alice~dev/1 and user alice were not created" in (
        run.stdout
    )
    assert run.output == {"provisioning": {"mongodb": "not configured", "rabbitmq": "not configured"}}
    assert PASSWORD not in run.text


def test_provision_install_puts_vhost_user_and_permissions_with_basic_auth(omegaml, rabbit):
    run = omegaml.run("install", env={"RABBITMQ_ADMIN_URL": rabbit.url()})

    assert run.code == 0, run.text
    assert rabbit.requests == install_requests()
    assert run.output == {"provisioning": {"mongodb": "not configured", "rabbitmq": "created"}}
    assert PASSWORD not in run.text and ADMIN_PASSWORD not in run.text


def test_provision_update_is_idempotent(omegaml, rabbit):
    assert omegaml.run("install", env={"RABBITMQ_ADMIN_URL": rabbit.url()}).code == 0
    run = omegaml.run("update", env={"RABBITMQ_ADMIN_URL": rabbit.url()})

    assert run.code == 0, run.text
    assert rabbit.requests == install_requests() * 2


def test_provision_uninstall_deletes_vhosts_then_the_user_and_tolerates_absent_ones(omegaml, rabbit):
    env = {"RABBITMQ_ADMIN_URL": rabbit.url()}
    assert omegaml.run("install", env=env).code == 0
    rabbit.requests.clear()

    run = omegaml.run("uninstall", env=env)
    assert run.code == 0, run.text
    assert rabbit.requests == [
        ("DELETE", "/api/vhosts/alice", None),
        ("DELETE", "/api/vhosts/alice~dev%2F1", None),
        ("DELETE", "/api/users/alice", None),
    ]
    assert rabbit.resources == set()
    assert run.output == {"provisioning": {"mongodb": "not configured", "rabbitmq": "removed"}}

    again = omegaml.run("uninstall", env=env)
    assert again.code == 0, again.text
    assert "absent already" in again.stdout


def test_provision_check_gets_vhosts_users_and_permissions(omegaml, rabbit):
    env = {"RABBITMQ_ADMIN_URL": rabbit.url()}
    assert omegaml.run("install", env=env).code == 0
    rabbit.requests.clear()

    run = omegaml.run("check", env=env)

    assert run.code == 0, run.text
    assert [(method, path) for method, path, _ in rabbit.requests] == [
        ("GET", "/api/vhosts/alice"),
        ("GET", "/api/users/alice"),
        ("GET", "/api/permissions/alice/alice"),
        ("GET", "/api/vhosts/alice~dev%2F1"),
        ("GET", "/api/users/alice"),
        ("GET", "/api/permissions/alice~dev%2F1/alice"),
    ]
    assert run.output is None  # a check records nothing


def test_provision_check_fails_when_the_vhost_is_gone(omegaml, rabbit):
    env = {"RABBITMQ_ADMIN_URL": rabbit.url()}
    assert omegaml.run("install", env=env).code == 0
    rabbit.resources.discard("/api/vhosts/alice~dev%2F1")

    run = omegaml.run("check", env=env)

    assert_one_line_failure(run, "RabbitMQ vhost 'alice~dev/1' does not exist")


@pytest.mark.parametrize(
    "failure, fragment",
    [
        ({("PUT", "/api/users/alice"): 500}, "PUT /api/users/alice answered HTTP 500"),
        ({("PUT", "/api/vhosts/alice"): 403}, "PUT /api/vhosts/alice answered HTTP 403"),
    ],
)
def test_provision_fails_with_one_line_reason_when_the_management_api_answers_an_error(
    omegaml, rabbit, failure, fragment
):
    rabbit.failures.update(failure)

    run = omegaml.run("install", env={"RABBITMQ_ADMIN_URL": rabbit.url()})

    assert_one_line_failure(run, fragment, "(disk full)")
    assert PASSWORD not in run.text and ADMIN_PASSWORD not in run.text


def test_provision_fails_when_the_admin_credentials_are_refused(omegaml, rabbit):
    run = omegaml.run("install", env={"RABBITMQ_ADMIN_URL": rabbit.url(password="wrong-password")})

    assert_one_line_failure(run, "answered HTTP 401", "Login failed")
    assert rabbit.resources == set()
    assert "wrong-password" not in run.text


def test_provision_fails_when_the_management_api_is_unreachable(omegaml):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    run = omegaml.run("install", env={"RABBITMQ_ADMIN_URL": f"http://admin:{ADMIN_PASSWORD}@127.0.0.1:{port}"})

    assert_one_line_failure(run, f"RabbitMQ management API at http://127.0.0.1:{port} cannot be reached")
    assert ADMIN_PASSWORD not in run.text


def test_provision_refuses_qualifiers_that_give_one_rabbitmq_user_two_passwords(tmp_path, rabbit):
    settings = json.loads(json.dumps(SETTINGS))
    settings["dev"]["OMEGA_CELERY_CONFIG"]["BROKER_URL"] = "amqp://alice:other-password@rabbit:5672/alice~dev"
    deployment = Deployment(tmp_path, PROVISION, "omegaml", settings=settings)

    run = deployment.run("install", env={"RABBITMQ_ADMIN_URL": rabbit.url()})

    assert_one_line_failure(run, "'default' and 'dev' give the RabbitMQ user 'alice' different passwords")
    assert rabbit.requests == []


def test_provision_check_without_admin_urls_passes_on_complete_settings(omegaml):
    run = omegaml.run("check")

    assert run.code == 0, run.text
    assert "2 qualifier(s) with a database and a broker" in run.stdout


@pytest.mark.parametrize(
    "settings, reason",
    [
        ({}, "the settings hold no qualifier"),
        (
            {"default": {"OMEGA_MONGO_URL": "mongodb://alice:pw@mongo:27017/", "OMEGA_CELERY_CONFIG": {}}},
            "OMEGA_MONGO_URL names no database; qualifier 'default': OMEGA_CELERY_CONFIG.BROKER_URL is missing",
        ),
        ({"dev": {"OMEGA_USERID": "alice"}}, "qualifier 'dev': OMEGA_MONGO_URL is missing"),
    ],
)
def test_provision_check_fails_with_the_reason_when_settings_are_incomplete(tmp_path, settings, reason):
    deployment = Deployment(tmp_path, PROVISION, "omegaml", settings=settings)

    run = deployment.run("check")

    assert run.code == 1
    assert_one_line_failure(run, reason)


def fake_mongosh(tmp_path: Path, exit_code: int = 0) -> tuple[str, Path]:
    """A `mongosh` on PATH that records how it was called."""
    bindir, record = tmp_path / "bin", tmp_path / "mongosh-call.json"
    bindir.mkdir()
    script = bindir / "mongosh"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "env = {k: os.environ.get(k) for k in ('OMEGAOPS_MONGO_ADMIN_URL', 'OMEGAOPS_MONGO_SPEC')}\n"
        f"open({str(record)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], 'env': env}}))\n"
        "print('MongoDB user alice for database alice: created')\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return f"{bindir}:{CLEAN_PATH}", record


def test_provision_creates_mongodb_users_with_mongosh_passing_secrets_only_in_its_environment(omegaml, tmp_path):
    path, record = fake_mongosh(tmp_path)
    admin_url = f"mongodb://root:{ADMIN_PASSWORD}@mongo:27017/admin"

    run = omegaml.run("install", env={"MONGO_ADMIN_URL": admin_url}, path=path)

    assert run.code == 0, run.text
    call = json.loads(record.read_text())
    argv = " ".join(call["argv"])
    assert call["argv"][:3] == ["--nodb", "--quiet", "--norc"] and call["argv"][3] == "--eval"
    assert "alice" not in argv and PASSWORD not in argv and ADMIN_PASSWORD not in argv
    assert call["env"]["OMEGAOPS_MONGO_ADMIN_URL"] == admin_url
    spec = json.loads(call["env"]["OMEGAOPS_MONGO_SPEC"])
    assert spec == {
        "action": "create",
        "users": [
            {"user": "alice", "password": PASSWORD, "db": "alice", "authdb": "alice"},
            {"user": "alice", "password": PASSWORD, "db": "alice~dev", "authdb": "alice~dev"},
        ],
    }
    assert "mongosh: MongoDB user alice for database alice: created" in run.stdout
    assert run.output == {"provisioning": {"mongodb": "created", "rabbitmq": "not configured"}}


def test_provision_fails_when_mongosh_fails(omegaml, tmp_path):
    path, _ = fake_mongosh(tmp_path, exit_code=1)

    run = omegaml.run("install", env={"MONGO_ADMIN_URL": "mongodb://root:pw@mongo/admin"}, path=path)

    assert run.code == 1
    assert "error: mongosh failed with exit code 1" in run.stderr
    assert run.output is None


def test_provision_says_so_when_mongosh_is_not_installed(omegaml):
    run = omegaml.run("install", env={"MONGO_ADMIN_URL": "mongodb://root:pw@mongo/admin"}, path="/nonexistent")

    assert run.code == 0, run.text
    assert "mongosh is not installed on this worker (not on PATH): the MongoDB user alice" in run.stdout
    assert run.output["provisioning"]["mongodb"] == "mongosh missing"


# -- worker: worker.py ----------------------------------------------------------------------------

SLEEPER = shlex.join([sys.executable, "-c", "import time; time.sleep(600)  # omegaops-test-worker"])
MARKER = b"omegaops-test-worker"


def process_runs(pid: int) -> bool:
    """Alive and not a zombie (the workers are re-parented when the script exits)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def wait_until(condition, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class WorkerDeployment(Deployment):
    def __init__(self, tmp_path):
        super().__init__(
            tmp_path,
            WORKER,
            "worker",
            env={"WORKER_COMMAND": SLEEPER, "WORKER_STOP_GRACE": "5", "WORKER_START_SECONDS": "0.3"},
        )
        self.seen: set[int] = set()

    def run(self, *args, **kwargs) -> Run:
        try:
            return super().run(*args, **kwargs)
        finally:
            self.seen.update(self.pids())

    def pids(self) -> list[int]:
        return [json.loads(path.read_text())["pid"] for path in sorted(self.state_dir.glob("worker-*.pid"))]

    def kill_all(self) -> None:
        for pid in self.seen:
            try:
                ours = MARKER in Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if ours:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def worker(tmp_path):
    deployment = WorkerDeployment(tmp_path)
    try:
        yield deployment
    finally:
        deployment.kill_all()


def test_worker_install_starts_size_processes_that_outlive_the_script(worker):
    run = worker.run("install", {"size": "2"})

    assert run.code == 0, run.text
    assert run.output == {"worker": {"size": 2, "running": 2, "command": SLEEPER, "qualifier": "default"}}
    pids = worker.pids()
    assert len(pids) == 2 and all(process_runs(pid) for pid in pids)
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    assert b"OMEGA_USERID=alice" in environ and b"OMEGA_QUALIFIER=default" in environ
    assert not any(item.startswith(b"OMEGAOPS_OUTPUT=") for item in environ)
    assert MARKER in Path(f"/proc/{pids[0]}/cmdline").read_bytes()


def test_worker_update_to_a_smaller_size_stops_the_extra_worker(worker):
    assert worker.run("install", {"size": "2"}).code == 0
    first, second = worker.pids()

    run = worker.run("update", {"size": "1"})

    assert run.code == 0, run.text
    assert run.output["worker"] == {"size": 1, "running": 1, "command": SLEEPER, "qualifier": "default"}
    assert worker.pids() == [first]
    assert process_runs(first)
    assert wait_until(lambda: not process_runs(second))


def test_worker_check_passes_then_fails_when_a_worker_died_and_update_restarts_it(worker):
    assert worker.run("install", {"size": "2"}).code == 0
    check = worker.run("check")
    assert check.code == 0, check.text
    assert "2 of 2 worker(s) running" in check.stdout

    victim = worker.pids()[1]
    os.killpg(victim, signal.SIGKILL)
    assert wait_until(lambda: not process_runs(victim))

    check = worker.run("check")
    assert check.code == 1
    assert f"worker 2 (pid {victim}) is not running; 1 of 2 worker(s) running" in check.stderr

    update = worker.run("update")  # no size: keeps the recorded 2
    assert update.code == 0, update.text
    assert "stale pid file removed" in update.stdout
    assert len(worker.pids()) == 2 and victim not in worker.pids()
    assert worker.run("check").code == 0


def test_worker_uninstall_stops_every_worker(worker):
    assert worker.run("install", {"size": "3"}).code == 0
    pids = worker.pids()

    run = worker.run("uninstall")

    assert run.code == 0, run.text
    assert all(wait_until(lambda pid=pid: not process_runs(pid)) for pid in pids)
    assert worker.pids() == []
    assert run.output["worker"]["running"] == 0


def test_worker_without_worker_command_records_the_size_and_says_so(worker):
    run = worker.run("install", {"size": "3"}, env={"WORKER_COMMAND": ""})

    assert run.code == 0, run.text
    assert "WORKER_COMMAND is not configured" in run.stdout
    assert run.output == {"worker": {"size": 3, "running": 0, "command": None, "qualifier": "default"}}
    assert worker.pids() == []
    check = worker.run("check", env={"WORKER_COMMAND": ""})
    assert check.code == 1
    assert "WORKER_COMMAND is not configured" in check.stderr


@pytest.mark.parametrize("size", ["abc", "17", "-1", "1.5", "", "٣"])
def test_worker_rejects_an_invalid_size_with_exit_code_2(worker, size):
    run = worker.run("install", {"size": size})

    assert run.code == 2, run.text
    assert "size must be a whole number from 0 to 16" in run.stderr
    assert worker.pids() == [] and run.output is None


def test_worker_install_fails_when_the_command_exits_at_once(worker):
    command = shlex.join([sys.executable, "-c", "import sys; print('no broker configured'); sys.exit(3)"])

    run = worker.run("install", {"size": "2"}, env={"WORKER_COMMAND": command})

    assert run.code == 1
    assert "exited at once with code 3" in run.stderr and "no broker configured" in run.stderr
    assert worker.pids() == [] and run.output is None


def test_worker_install_fails_when_the_command_does_not_exist(worker):
    run = worker.run("install", env={"WORKER_COMMAND": "/nonexistent/om runtime celery worker"})

    assert run.code == 1
    assert "WORKER_COMMAND cannot be started: /nonexistent/om" in run.stderr


def test_worker_never_signals_a_process_that_reused_a_recorded_pid(worker):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        (worker.state_dir / "worker-1.pid").write_text(
            json.dumps({"index": 1, "pid": stranger.pid, "start": "1", "host": socket.gethostname()})
        )
        run = worker.run("install", {"size": "1"})

        assert run.code == 0, run.text
        assert f"worker 1 (pid {stranger.pid}) was not running: stale pid file removed" in run.stdout
        assert stranger.poll() is None
        assert worker.pids() != [stranger.pid]
    finally:
        stranger.kill()
        stranger.wait()


def test_worker_spec_loads_with_the_script_for_every_phase():
    from app.ops.specs import parse_specs

    text = (ROOT / "services" / "worker.yaml").read_text()
    (plan,) = parse_specs(text, "worker.yaml", SCRIPTS, {"CLUSTER_ID": "test"}, environ={})

    assert plan.name == "worker"
    assert plan.fields == {
        "title": "omega|ml runtime worker",
        "description": plan.fields["description"],
        "offered": True,
        "one_per_user": True,
        "parameters": plan.fields["parameters"],
    }
    size = next(p for p in plan.fields["parameters"] if p["name"] == "size")
    assert (size["type"], size["minimum"], size["maximum"], size["default"]) == ("integer", 0, 16, 1)
    assert plan.env["WORKER_COMMAND"] == ""
    (step,) = plan.steps
    assert (step.target, step.language, step.timeout) == ("worker/worker.py", "python", 120)
    assert step.phases == ["install", "update", "uninstall", "check"]
