"""``/admin/api/v2/service/deployment/``, ``command/`` and ``task/`` as the omegaml client and operators use them.

The requests are the client's own (CLIENT-CONTRACT.md section 2): ``Authorization: ApiKey <userid>:<key>``,
``POST .../command`` without a trailing slash, then polling the ``Location``. Commands run in process
with ``engine.execute``: no worker is needed here.
"""

import json
from contextlib import contextmanager

import pytest
from rq.job import Job
from sqlalchemy import event, func, select

from app.extensions import db
from app.jobs.provisioning import job_id
from app.jobs.queues import get_redis
from app.models import (
    FailureReason,
    Health,
    IdempotencyKey,
    ServiceCommand,
    ServiceDeployment,
    ServiceTask,
    Status,
)
from app.ops import engine

from .api_helpers import assert_error, with_key
from .engine_helpers import issue, make_script_plan, reload, write_script
from .factories import make_plan, make_user

BASE = "/admin/api/v2/service"
COMMAND = f"{BASE}/command"  # what the client posts to: no trailing slash
COMMANDS = f"{BASE}/command/"
DEPLOYMENTS = f"{BASE}/deployment/"
TASKS = f"{BASE}/task/"
HUGE_ID = 99999999999


# helpers


def client_body(owner, **changes):
    """The body of ``om cloud add worker --specs "provider=,size=2"``."""
    body = {"offering": "worker", "user": owner.userid, "phase": "install", "params": "provider=,size=2"}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def command_uri(ident):
    return f"{BASE}/command/{ident}/"


def commands_in_db():
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(ServiceCommand))


def get_command(ident):
    db.session.expire_all()
    return db.session.get(ServiceCommand, ident)


def is_enqueued(command_id):
    return Job.exists(job_id(command_id), connection=get_redis())


def run(command_id):
    return engine.execute(command_id, worker="test")


def post(client, headers, body, path=COMMAND, **kwargs):
    return client.post(path, json=body, headers=headers, **kwargs)


@contextmanager
def counting_statements():
    """Count the SQL statements sent to the database inside the block."""
    statements = []

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before_cursor_execute)


# fixtures


@pytest.fixture
def any_client(any_app):
    return any_app.test_client()


@pytest.fixture
def worker_plan(app):
    """``worker``: the plan of the client's examples; several deployments per user allowed."""
    return make_plan(name="worker", title="Worker", one_per_user=False)


@pytest.fixture
def any_worker_plan(any_app):
    return make_plan(name="worker", title="Worker", one_per_user=False)


@pytest.fixture
def jane(app):
    return with_key(userid="jane", email="jane@example.com")


@pytest.fixture
def bob(app):
    return with_key(userid="bob", email="bob@example.com")


@pytest.fixture
def admin(app):
    return with_key(userid="root", email="root@example.com", admin=True)


@pytest.fixture
def failing_plan(scripts):
    """``flaky``: its one step exits 1, so every install fails."""
    write_script("fail.sh", "echo going down\nexit 1\n")
    make_script_plan("flaky", "- script: fail.sh\n  phases: [install, update]", one_per_user=False)
    return "flaky"


# POST command: what `om cloud add|update|remove` sends


@pytest.mark.parametrize("path", [COMMAND, COMMANDS])
def test_the_client_post_creates_a_command_with_a_location(any_client, any_worker_plan, path):
    user, headers = with_key(userid="jane", email="jane@example.com")
    response = post(any_client, headers, client_body(user), path=path)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    command = get_command(body["id"])
    assert command is not None and command.status is Status.INITIATED
    assert response.headers["Location"] == command_uri(command.id), "a path, not an absolute URL"
    assert body["resource_uri"] == command_uri(command.id)
    assert body["status"] == "0" and body["status_name"] == "INITIATED"
    assert body["phase"] == "install" and body["offering"] == "worker"
    assert body["user"] == "jane" and body["issuer"] == "jane"
    assert body["params"] == {"provider": "", "size": "2"}
    assert body["deployment"] == f"{BASE}/deployment/{command.deployment_id}/"
    assert body["tasks"] == [] and body["retry_of"] is None
    assert command.params == {"provider": "", "size": "2"} and command.params_raw == "provider=,size=2"
    assert command.deployment.status is Status.INITIATED
    assert is_enqueued(command.id), "committed, then put on the provisioning queue"


@pytest.mark.parametrize(
    "params, words",
    [
        ("bad", ["params", "'bad'", "key=value"]),
        ("size=1,,provider=", ["params", "item 2", "empty"]),
        ("size=1,", ["params", "empty"]),
        ("size=1,size=2", ["params", "'size'", "twice"]),
        ("=2", ["params", "invalid key"]),
        ("1abc=2", ["params", "invalid key", "'1abc'"]),
    ],
)
def test_params_are_parsed_strictly(client, jane, worker_plan, params, words):
    user, headers = jane
    response = post(client, headers, client_body(user, params=params))
    assert_error(response, 400, "bad_request", *words)
    assert commands_in_db() == 0
    assert db.session.scalar(select(func.count()).select_from(ServiceDeployment)) == 0


@pytest.mark.parametrize("params", ["", None, "   ", "provider="])
def test_empty_params_and_an_empty_provider_are_fine(client, jane, worker_plan, params):
    user, headers = jane
    body = client_body(user)
    body["params"] = params
    response = post(client, headers, body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["params"] == ({"provider": ""} if params == "provider=" else {})


def test_params_are_optional(client, jane, worker_plan):
    user, headers = jane
    response = post(client, headers, {"offering": "worker", "phase": "install"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["params"] == {}


def test_an_unknown_offering_is_a_404(client, jane, worker_plan):
    user, headers = jane
    response = post(client, headers, client_body(user, offering="nosuch"))
    assert_error(response, 404, "not_found", "'nosuch'")
    assert commands_in_db() == 0


def test_a_plan_not_offered_is_a_404_for_users_and_allowed_for_admins(client, jane, admin):
    make_plan(name="internal", offered=False)
    user, headers = jane
    assert_error(post(client, headers, client_body(user, offering="internal")), 404, "not_found", "not offered")
    _, admin_headers = admin
    response = post(client, admin_headers, client_body(user, offering="internal"))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("phase", ["deploy", "INSTALL", "", "install "])
def test_a_bad_phase_is_a_400_naming_it(client, jane, worker_plan, phase):
    user, headers = jane
    response = post(client, headers, client_body(user, phase=phase))
    assert_error(response, 400, "bad_request", "phase")
    assert commands_in_db() == 0


def test_an_unknown_field_is_a_400_naming_it(client, jane, worker_plan):
    user, headers = jane
    response = post(client, headers, client_body(user, size="2"))
    assert_error(response, 400, "bad_request", "unknown field", "'size'")
    assert commands_in_db() == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("params", 5),
        ("params", {"size": "2"}),
        ("params", ["size=2"]),
        ("offering", 5),
        ("offering", None),
        ("phase", True),
        ("user", 42),
        ("user", ["jane"]),
        ("deployment", "one"),
        ("deployment", 2**40),
        ("deployment", 0),
    ],
)
def test_a_wrong_type_is_a_400_naming_the_field(client, jane, worker_plan, field, value):
    user, headers = jane
    body = client_body(user)
    body[field] = value
    response = post(client, headers, body)
    assert_error(response, 400, "bad_request", field)
    assert commands_in_db() == 0


@pytest.mark.parametrize("missing", ["offering", "phase"])
def test_a_missing_field_is_a_400_naming_it(client, jane, worker_plan, missing):
    user, headers = jane
    body = client_body(user)
    del body[missing]
    assert_error(post(client, headers, body), 400, "bad_request", missing)


def test_without_user_the_command_is_for_the_caller(client, jane, worker_plan):
    user, headers = jane
    response = post(client, headers, client_body(user, user=None))
    assert response.status_code == 201, response.get_json()
    command = get_command(response.get_json()["id"])
    assert command.user_id == user.id and command.issuer_id == user.id


def test_a_user_may_name_themselves_by_email(client, jane, worker_plan):
    user, headers = jane
    response = post(client, headers, client_body(user, user="jane@example.com"))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["user"] == "jane"


def test_a_user_cannot_issue_commands_for_someone_else(client, jane, bob, worker_plan):
    user, headers = jane
    for ident in ("bob", "bob@example.com", "nobody-at-all"):
        response = post(client, headers, client_body(user, user=ident))
        assert_error(response, 403, "forbidden", "own")
    assert commands_in_db() == 0


@pytest.mark.parametrize("ident", ["jane", "jane@example.com", "JANE@Example.com"])
def test_an_admin_issues_commands_for_anyone(client, jane, admin, worker_plan, ident):
    user, _ = jane
    _, headers = admin
    response = post(client, headers, client_body(user, user=ident))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["user"] == "jane" and body["issuer"] == "root"
    command = get_command(body["id"])
    assert command.user_id == user.id and command.issuer.userid == "root"
    assert command.deployment.user_id == user.id


def test_an_admin_issuing_for_an_unknown_user_gets_a_404(client, admin, worker_plan):
    _, headers = admin
    response = post(client, headers, {"offering": "worker", "user": "ghost", "phase": "install"})
    assert_error(response, 404, "not_found", "'ghost'")
    assert commands_in_db() == 0


def test_an_admin_issuing_for_an_inactive_user_gets_a_400(client, admin, worker_plan):
    make_user(userid="gone", email="gone@example.com", active=False)
    _, headers = admin
    response = post(client, headers, {"offering": "worker", "user": "gone", "phase": "install"})
    assert_error(response, 400, "bad_request", "not active")


def test_install_names_no_deployment_and_update_only_the_callers_own(client, jane, bob, worker_plan):
    user, headers = jane
    other, other_headers = bob
    first = post(client, headers, client_body(user)).get_json()
    assert_error(post(client, headers, client_body(user, deployment=first["deployment_id"])), 400, "bad_request")
    run(first["id"])
    # bob names jane's deployment: as if it did not exist
    response = post(client, other_headers, client_body(other, phase="update", deployment=first["deployment_id"]))
    assert_error(response, 404, "not_found")
    response = post(client, headers, client_body(user, phase="update", deployment=first["deployment_id"]))
    assert response.status_code == 201, response.get_json()


def test_update_of_nothing_is_a_404(client, jane, worker_plan):
    user, headers = jane
    response = post(client, headers, client_body(user, phase="update"))
    assert_error(response, 404, "not_found", "no deployment")


def test_with_several_deployments_an_update_must_name_one(client, jane, worker_plan):
    user, headers = jane
    first = post(client, headers, client_body(user)).get_json()
    second = post(client, headers, client_body(user)).get_json()
    run(first["id"])
    run(second["id"])
    assert_error(post(client, headers, client_body(user, phase="update")), 400, "bad_request", "name one")
    response = post(client, headers, client_body(user, phase="update", deployment=second["deployment_id"]))
    assert response.status_code == 201
    assert response.get_json()["deployment_id"] == second["deployment_id"]


def test_writes_need_an_api_key_not_the_browser_session(client, login, worker_plan):
    user = make_user(userid="jane", email="jane@example.com")
    login(user)
    response = post(client, {}, client_body(user))
    assert_error(response, 401, "unauthorized")
    assert commands_in_db() == 0


# GET command: the client polls the Location


def test_the_client_polls_the_location_until_the_status_is_final(any_client, any_worker_plan):
    user, headers = with_key(userid="jane", email="jane@example.com")
    created = post(any_client, headers, client_body(user))
    location = created.headers["Location"]
    response = any_client.get(location, headers=headers)
    # omegaml 0.18 crashes on a 200 here: ApiKey callers get 201 with a Location to the same resource
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"] == location
    body = response.get_json()
    assert body["resource_uri"] == location and body["status"] == "0"
    assert int(body["status"]) <= 1, "the client keeps polling"
    assert run(body["id"]) is Status.COMPLETED
    response = any_client.get(location, headers=headers)
    assert response.status_code == 201 and response.headers["Location"] == location
    body = response.get_json()
    assert body["status"] == "5" and int(body["status"]) > 1, "the client stops and reports success"
    assert body["status_name"] == "COMPLETED" and body["failure_reason"] is None
    assert body["started_at"] and body["finished_at"]
    [task] = body["tasks"]
    assert task["status"] == "5" and task["position"] == 1 and task["exit_code"] == 0
    assert task["resource_uri"] == f"{BASE}/task/{task['id']}/"
    assert "log" not in task, "the command lists its tasks without their logs"


def test_the_poll_url_without_a_trailing_slash_answers_the_same(client, jane, worker_plan):
    user, headers = jane
    location = post(client, headers, client_body(user)).headers["Location"]
    response = client.get(location.rstrip("/"), headers=headers)
    assert response.status_code == 201
    assert response.get_json()["resource_uri"] == location


def test_a_logged_in_browser_reads_a_command_with_a_200(client, login, worker_plan):
    user = make_user(userid="jane", email="jane@example.com")
    command = issue("worker", user)
    login(user)
    response = client.get(command_uri(command.id))
    assert response.status_code == 200, response.get_json()
    assert "Location" not in response.headers
    assert response.get_json()["resource_uri"] == command_uri(command.id)


def test_the_detail_lists_the_tasks_in_order(client, jane, scripts):
    user, headers = jane
    for name in ("one", "two", "three"):
        write_script(f"{name}.sh", f"echo step {name}\n")
    make_script_plan("worker", "- script: one.sh\n- script: two.sh\n- script: three.sh")
    body = post(client, headers, client_body(user)).get_json()
    assert run(body["id"]) is Status.COMPLETED
    body = client.get(command_uri(body["id"]), headers=headers).get_json()
    assert body["status"] == "5"
    assert [(t["position"], t["name"], t["status"]) for t in body["tasks"]] == [
        (1, "one.sh", "5"),
        (2, "two.sh", "5"),
        (3, "three.sh", "5"),
    ]


def test_a_failed_command_shows_why(client, jane, failing_plan):
    user, headers = jane
    body = post(client, headers, client_body(user, offering="flaky")).get_json()
    assert run(body["id"]) is Status.FAILED
    body = client.get(command_uri(body["id"]), headers=headers).get_json()
    assert body["status"] == "9" and int(body["status"]) > 1, "the client stops and reports a failure"
    assert body["failure_reason"] == FailureReason.SCRIPT_ERROR.value
    assert "fail.sh" in body["failure_detail"]
    [task] = body["tasks"]
    assert task["status"] == "9" and task["exit_code"] == 1 and task["failure_reason"] == "script error"


def test_someone_elses_command_is_a_404_and_an_admin_sees_it(client, jane, bob, admin, worker_plan):
    user, headers = jane
    _, bob_headers = bob
    _, admin_headers = admin
    location = post(client, headers, client_body(user)).headers["Location"]
    assert_error(client.get(location, headers=bob_headers), 404, "not_found")
    response = client.get(location, headers=admin_headers)
    assert response.status_code == 201 and response.get_json()["user"] == "jane"


def test_a_logged_in_browser_does_not_see_someone_elses_command(client, login, worker_plan):
    jane = make_user(userid="jane", email="jane@example.com")
    bob = make_user(userid="bob", email="bob@example.com")
    command = issue("worker", jane)
    login(bob)
    assert_error(client.get(command_uri(command.id)), 404, "not_found")


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", f"{BASE}/command/12345/"),
        ("get", f"{BASE}/command/{HUGE_ID}/"),
        ("get", f"{BASE}/command/{2**31}/"),
        ("post", f"{BASE}/command/{HUGE_ID}/cancel/"),
        ("post", f"{BASE}/command/{HUGE_ID}/retry/"),
        ("get", f"{BASE}/deployment/{HUGE_ID}/"),
        ("get", f"{BASE}/task/{HUGE_ID}/"),
        ("get", f"{BASE}/task/12345/"),
    ],
)
def test_missing_and_huge_ids_are_404s(any_client, method, path):
    _, headers = with_key(userid="jane", email="jane@example.com")
    response = getattr(any_client, method)(path, headers=headers)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", f"{BASE}/command/1/"),
        ("get", COMMANDS),
        ("post", COMMAND),
        ("post", f"{BASE}/command/1/cancel/"),
        ("post", f"{BASE}/command/1/retry/"),
        ("get", DEPLOYMENTS),
        ("get", f"{BASE}/deployment/1/"),
        ("get", TASKS),
        ("get", f"{BASE}/task/1/"),
    ],
)
def test_anonymous_requests_get_a_401_in_json(client, worker_plan, method, path):
    user = make_user(userid="jane", email="jane@example.com")
    issue("worker", user)
    body = client_body(user) if method == "post" else None
    response = getattr(client, method)(path, json=body)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("ApiKey")
    wrong = {"Authorization": "ApiKey jane:0123456789abcdef0123456789abcdef01234567"}
    assert_error(getattr(client, method)(path, json=body, headers=wrong), 401, "unauthorized")
    assert commands_in_db() == 1


@pytest.mark.parametrize(
    "method, path, data",
    [
        ("post", COMMAND, b'{"offering": '),
        ("post", COMMAND, b'{"offering": "worker", "phase": "install", "size": 2}'),
        ("get", f"{DEPLOYMENTS}?foo=1", None),
    ],
)
def test_credentials_are_checked_before_the_request_is_validated(client, worker_plan, method, path, data):
    """The contract: wrong or missing credentials are a 401, whatever else is wrong with the request."""
    kwargs = {"data": data, "content_type": "application/json"} if method == "post" else {}
    assert_error(getattr(client, method)(path, **kwargs), 401, "unauthorized")
    wrong = {"Authorization": "ApiKey jane:0123456789abcdef0123456789abcdef01234567"}
    assert_error(getattr(client, method)(path, headers=wrong, **kwargs), 401, "unauthorized")


# conflicts


def test_a_second_install_of_a_one_per_user_plan_is_a_409_naming_the_command_in_flight(any_client, any_app):
    make_plan(name="worker", one_per_user=True)
    user, headers = with_key(userid="jane", email="jane@example.com")
    first = post(any_client, headers, client_body(user)).get_json()
    response = post(any_client, headers, client_body(user))
    body = assert_error(response, 409, "conflict", "already has deployment")
    assert body["blocking"] == first["resource_uri"]
    assert commands_in_db() == 1
    assert run(first["id"]) is Status.COMPLETED
    # nothing in flight any more: still one per user, and nothing to wait for
    body = assert_error(post(any_client, headers, client_body(user)), 409, "conflict", "update or uninstall")
    assert "blocking" not in body


def test_an_update_while_a_command_is_in_flight_is_a_409_naming_it(client, jane, worker_plan):
    user, headers = jane
    install = post(client, headers, client_body(user)).get_json()
    body = assert_error(post(client, headers, client_body(user, phase="update")), 409, "conflict", "INITIATED")
    assert body["blocking"] == install["resource_uri"]
    assert engine.claim(install["id"], "test")  # running now
    body = assert_error(post(client, headers, client_body(user, phase="uninstall")), 409, "conflict", "PENDING")
    assert body["blocking"] == install["resource_uri"]
    assert commands_in_db() == 1


def test_update_and_uninstall_through_the_api(client, jane, worker_plan):
    user, headers = jane
    install = post(client, headers, client_body(user)).get_json()
    run(install["id"])
    update = post(client, headers, client_body(user, phase="update", params="size=4"))
    assert update.status_code == 201, update.get_json()
    update = update.get_json()
    assert update["deployment_id"] == install["deployment_id"] and update["params"] == {"size": "4"}
    assert run(update["id"]) is Status.COMPLETED
    uninstall = post(client, headers, client_body(user, phase="uninstall", params="")).get_json()
    assert run(uninstall["id"]) is Status.COMPLETED
    deployment = client.get(f"{BASE}/deployment/{install['deployment_id']}/", headers=headers).get_json()
    assert deployment["status"] == "8" and deployment["removed_at"]
    assert_error(post(client, headers, client_body(user, phase="update")), 404, "not_found")


# cancel and retry


def test_cancelling_an_initiated_command_fails_it_at_once(any_client, any_worker_plan):
    user, headers = with_key(userid="jane", email="jane@example.com")
    command = post(any_client, headers, client_body(user)).get_json()
    response = any_client.post(f"{command['resource_uri']}cancel/", headers=headers)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "9" and body["failure_reason"] == FailureReason.CANCELLED.value
    assert body["resource_uri"] == command["resource_uri"]
    assert run(command["id"]) is None, "a worker that picks it up later does nothing"
    db.session.expire_all()
    assert db.session.get(ServiceDeployment, command["deployment_id"]).status is Status.REMOVED
    polled = any_client.get(command["resource_uri"], headers=headers).get_json()
    assert polled["status"] == "9"


def test_cancelling_a_running_command_asks_its_runner_to_stop(client, jane, worker_plan):
    user, headers = jane
    command = post(client, headers, client_body(user)).get_json()
    assert engine.claim(command["id"], "test")
    response = client.post(f"{command['resource_uri']}cancel/", headers=headers)
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "1" and body["cancel_requested_at"]
    assert get_command(command["id"]).cancel_requested_at is not None


def test_cancelling_a_finished_command_is_a_409(client, jane, worker_plan):
    user, headers = jane
    command = post(client, headers, client_body(user)).get_json()
    run(command["id"])
    response = client.post(f"{command['resource_uri']}cancel/", headers=headers)
    assert_error(response, 409, "conflict", "COMPLETED")
    assert get_command(command["id"]).status is Status.COMPLETED


def test_cancelling_someone_elses_command_is_a_404(client, jane, bob, worker_plan):
    user, headers = jane
    _, bob_headers = bob
    command = post(client, headers, client_body(user)).get_json()
    assert_error(client.post(f"{command['resource_uri']}cancel/", headers=bob_headers), 404, "not_found")
    assert get_command(command["id"]).status is Status.INITIATED


def test_a_browser_session_cannot_cancel(client, login, worker_plan):
    user = make_user(userid="jane", email="jane@example.com")
    command = issue("worker", user)
    login(user)
    assert_error(client.post(f"{command_uri(command.id)}cancel/"), 401, "unauthorized")
    assert get_command(command.id).status is Status.INITIATED


def test_retrying_a_failed_command_issues_a_new_one(client, jane, failing_plan):
    user, headers = jane
    failed = post(client, headers, client_body(user, offering="flaky")).get_json()
    assert run(failed["id"]) is Status.FAILED
    response = client.post(f"{failed['resource_uri']}retry/", headers=headers)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["id"] != failed["id"]
    assert response.headers["Location"] == body["resource_uri"] == command_uri(body["id"])
    assert body["retry_of"] == failed["resource_uri"]
    assert body["status"] == "0" and body["phase"] == "install" and body["issuer"] == "jane"
    assert body["deployment_id"] == failed["deployment_id"] and body["params"] == failed["params"]
    assert is_enqueued(body["id"])
    # the retry is in flight: retrying the failed one again is a conflict naming it
    again = client.post(f"{failed['resource_uri']}retry/", headers=headers)
    assert assert_error(again, 409, "conflict")["blocking"] == body["resource_uri"]


def test_retrying_a_completed_command_is_a_409(client, jane, worker_plan):
    user, headers = jane
    command = post(client, headers, client_body(user)).get_json()
    run(command["id"])
    assert_error(client.post(f"{command['resource_uri']}retry/", headers=headers), 409, "conflict", "FAILED")
    assert commands_in_db() == 1


def test_retrying_a_cancelled_install_is_a_409_the_deployment_is_gone(client, jane, worker_plan):
    user, headers = jane
    command = post(client, headers, client_body(user)).get_json()
    client.post(f"{command['resource_uri']}cancel/", headers=headers)
    assert_error(client.post(f"{command['resource_uri']}retry/", headers=headers), 409, "conflict", "removed")


def test_retrying_someone_elses_command_is_a_404_but_an_admin_may(client, jane, bob, admin, failing_plan):
    user, headers = jane
    _, bob_headers = bob
    _, admin_headers = admin
    failed = post(client, headers, client_body(user, offering="flaky")).get_json()
    run(failed["id"])
    assert_error(client.post(f"{failed['resource_uri']}retry/", headers=bob_headers), 404, "not_found")
    response = client.post(f"{failed['resource_uri']}retry/", headers=admin_headers)
    assert response.status_code == 201
    assert response.get_json()["issuer"] == "root" and response.get_json()["user"] == "jane"


# lists


def deployments_for(*users, plan="worker", complete=True):
    """One deployment each (in order), installed and (if ``complete``) run to completion."""
    commands = []
    for user in users:
        command = issue(plan, user)
        if complete:
            assert run(command.id) is Status.COMPLETED
        commands.append(reload(command))
    return commands


def test_lists_answer_the_envelope_and_page_through(any_client, any_worker_plan):
    user, headers = with_key(userid="jane", email="jane@example.com")
    commands = deployments_for(user, user, user, user, user)
    response = any_client.get(f"{DEPLOYMENTS}?limit=2", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"meta", "objects"}
    assert body["meta"] == {
        "limit": 2,
        "offset": 0,
        "total_count": 5,
        "next": f"{DEPLOYMENTS}?limit=2&offset=2",
        "previous": None,
    }
    seen = [obj["id"] for obj in body["objects"]]
    body = any_client.get(body["meta"]["next"], headers=headers).get_json()
    assert body["meta"]["previous"] == f"{DEPLOYMENTS}?limit=2&offset=0"
    seen += [obj["id"] for obj in body["objects"]]
    body = any_client.get(body["meta"]["next"], headers=headers).get_json()
    assert body["meta"]["next"] is None and body["meta"]["offset"] == 4
    seen += [obj["id"] for obj in body["objects"]]
    assert seen == [command.deployment_id for command in commands], "oldest first, each once"
    obj = body["objects"][0]
    assert obj["resource_uri"] == f"{BASE}/deployment/{obj['id']}/"
    assert obj["name"] == "worker" and obj["status"] == "5" and obj["user"] == "jane"
    assert obj["user_email"] == "jane@example.com" and obj["health"] == "unknown"
    assert obj["commands"] == f"{COMMANDS}?deployment={obj['id']}"
    # the defaults, and an offset past the end
    body = any_client.get(DEPLOYMENTS, headers=headers).get_json()
    assert body["meta"]["limit"] == 20 and len(body["objects"]) == 5
    body = any_client.get(f"{DEPLOYMENTS}?offset=50", headers=headers).get_json()
    assert body["objects"] == [] and body["meta"]["total_count"] == 5 and body["meta"]["next"] is None
    assert body["meta"]["previous"] == f"{DEPLOYMENTS}?limit=20&offset=30"


def test_the_list_urls_work_without_a_trailing_slash(client, jane, worker_plan):
    user, headers = jane
    deployments_for(user)
    for path in (DEPLOYMENTS, COMMANDS, TASKS):
        response = client.get(path.rstrip("/"), headers=headers)
        assert response.status_code == 200 and response.get_json()["meta"]["total_count"] == 1


def test_users_see_their_own_and_admins_see_all(any_client, any_worker_plan):
    jane, jane_headers = with_key(userid="jane", email="jane@example.com")
    bob, bob_headers = with_key(userid="bob", email="bob@example.com")
    _, admin_headers = with_key(userid="root", email="root@example.com", admin=True)
    jane_commands = deployments_for(jane, jane)
    bob_commands = deployments_for(bob)

    def ids(path, headers):
        response = any_client.get(path, headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["meta"]["total_count"] == len(body["objects"])
        return [obj["id"] for obj in body["objects"]]

    assert ids(DEPLOYMENTS, jane_headers) == [c.deployment_id for c in jane_commands]
    assert ids(DEPLOYMENTS, bob_headers) == [c.deployment_id for c in bob_commands]
    assert ids(DEPLOYMENTS, admin_headers) == [c.deployment_id for c in jane_commands + bob_commands]
    assert ids(COMMANDS, jane_headers) == [c.id for c in jane_commands]
    assert ids(COMMANDS, bob_headers) == [c.id for c in bob_commands]
    assert ids(COMMANDS, admin_headers) == [c.id for c in jane_commands + bob_commands]
    jane_tasks = [t.id for c in jane_commands for t in reload(c).tasks]
    bob_tasks = [t.id for c in bob_commands for t in reload(c).tasks]
    assert len(jane_tasks) == 2 and len(bob_tasks) == 1
    assert ids(TASKS, jane_headers) == jane_tasks
    assert ids(TASKS, bob_headers) == bob_tasks
    assert ids(TASKS, admin_headers) == jane_tasks + bob_tasks
    # a user's filters cannot widen what they see
    assert ids(f"{DEPLOYMENTS}?user=bob", jane_headers) == []
    assert ids(f"{DEPLOYMENTS}?user__email=bob@example.com", jane_headers) == []
    assert ids(f"{COMMANDS}?deployment={bob_commands[0].deployment_id}", jane_headers) == []
    assert ids(f"{TASKS}?command={bob_commands[0].id}", jane_headers) == []
    # someone else's deployment detail is a 404
    bob_deployment = f"{BASE}/deployment/{bob_commands[0].deployment_id}/"
    assert_error(any_client.get(bob_deployment, headers=jane_headers), 404, "not_found")
    assert any_client.get(bob_deployment, headers=admin_headers).get_json()["user"] == "bob"


def test_a_logged_in_browser_reads_the_lists(client, login, worker_plan):
    user = make_user(userid="jane", email="jane@example.com")
    other = make_user(userid="bob", email="bob@example.com")
    deployments_for(user, other)
    login(user)
    for path in (DEPLOYMENTS, COMMANDS, TASKS):
        response = client.get(path)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["meta"]["total_count"] == 1


def test_deployment_filters(any_client, any_app):
    make_plan(name="worker", one_per_user=False)
    make_plan(name="omegaml")
    jane, _ = with_key(userid="jane", email="Jane@Example.com")
    bob, _ = with_key(userid="bob", email="bob@example.com")
    _, headers = with_key(userid="root", email="root@example.com", admin=True)
    jane_worker, bob_worker = deployments_for(jane, bob)
    [jane_omegaml] = deployments_for(jane, plan="omegaml")
    [pending] = deployments_for(bob, complete=False)
    db.session.get(ServiceDeployment, jane_omegaml.deployment_id).health = Health.UNHEALTHY.value
    db.session.commit()

    def ids(query):
        response = any_client.get(f"{DEPLOYMENTS}?{query}", headers=headers)
        assert response.status_code == 200, (query, response.get_json())
        return sorted(obj["id"] for obj in response.get_json()["objects"])

    def deps(*commands):
        return sorted(c.deployment_id for c in commands)

    assert ids("user__email=jane@example.com") == deps(jane_worker, jane_omegaml), "emails match in any case"
    assert ids("user__email=Jane@Example.com") == deps(jane_worker, jane_omegaml)
    assert ids("user__email=nobody@example.com") == []
    assert ids("user=bob") == deps(bob_worker, pending)
    assert ids("user=nobody") == []
    assert ids("name=omegaml") == deps(jane_omegaml)
    assert ids("name=worker") == deps(jane_worker, bob_worker, pending)
    assert ids("name=nosuch") == []
    assert ids("status=5") == ids("status=COMPLETED") == deps(jane_worker, bob_worker, jane_omegaml)
    assert ids("status=0") == ids("status=INITIATED") == deps(pending)
    assert ids("status=9") == []
    assert ids("health=unhealthy") == deps(jane_omegaml)
    assert ids("health=unknown") == deps(jane_worker, bob_worker, pending)
    assert ids("user=jane&name=worker&status=5") == deps(jane_worker)
    assert ids("format=json&user=bob") == deps(bob_worker, pending), "tastypie clients send format=json"


def test_the_admin_harness_polls_deployments_by_email(client, admin, worker_plan):
    """CLIENT-CONTRACT.md section 3: poll ``deployment?user__email=`` until no status is "0" or "1"."""
    user = make_user(userid="jane", email="jane@example.com")
    _, headers = admin
    [command] = deployments_for(user, complete=False)
    url = f"{BASE}/deployment?user__email=jane@example.com"
    statuses = [obj["status"] for obj in client.get(url, headers=headers).get_json()["objects"]]
    assert statuses == ["0"]
    run(command.id)
    objects = client.get(url, headers=headers).get_json()["objects"]
    assert [(obj["name"], obj["status"]) for obj in objects] == [("worker", "5")]


def test_command_filters(any_client, any_worker_plan):
    user, headers = with_key(userid="jane", email="jane@example.com")
    first, second = deployments_for(user, user)
    update = issue("worker", user, phase="update", deployment_id=first.deployment_id)
    uninstall = issue("worker", user, phase="uninstall", deployment_id=second.deployment_id)
    run(uninstall.id)

    def ids(query):
        response = any_client.get(f"{COMMANDS}?{query}", headers=headers)
        assert response.status_code == 200, (query, response.get_json())
        return [obj["id"] for obj in response.get_json()["objects"]]

    assert ids("phase=install") == [first.id, second.id]
    assert ids("phase=update") == [update.id]
    assert ids("phase=uninstall") == [uninstall.id]
    assert ids("status=0") == ids("status=INITIATED") == [update.id]
    assert ids("status=5") == [first.id, second.id, uninstall.id]
    assert ids(f"deployment={first.deployment_id}") == [first.id, update.id]
    assert ids(f"deployment={second.deployment_id}&phase=uninstall") == [uninstall.id]
    assert ids("deployment=2147483647") == []
    assert ids("user=jane&name=worker&status=5&phase=install") == [first.id, second.id]
    assert ids("name=nosuch") == []
    obj = any_client.get(f"{COMMANDS}?deployment={first.deployment_id}", headers=headers).get_json()["objects"][0]
    assert obj["resource_uri"] == command_uri(first.id) and obj["status"] == "5"
    assert "tasks" not in obj, "lists show commands without their tasks"


def test_task_filters(client, jane, scripts):
    user, headers = jane
    write_script("one.sh", "echo one\n")
    write_script("two.sh", "echo two\n")
    make_script_plan("worker", "- script: one.sh\n- script: two.sh", one_per_user=False)
    first, second = deployments_for(user, user)
    first_tasks = [t.id for t in reload(first).tasks]
    second_tasks = [t.id for t in reload(second).tasks]
    assert len(first_tasks) == len(second_tasks) == 2

    def ids(query):
        response = client.get(f"{TASKS}?{query}", headers=headers)
        assert response.status_code == 200, (query, response.get_json())
        return [obj["id"] for obj in response.get_json()["objects"]]

    assert ids(f"command={first.id}") == first_tasks
    assert ids(f"command={second.id}") == second_tasks
    assert ids(f"deployment={second.deployment_id}") == second_tasks
    assert ids("status=5") == first_tasks + second_tasks
    assert ids("status=9") == []
    assert ids("command=2147483647") == []
    obj = client.get(f"{TASKS}?command={first.id}", headers=headers).get_json()["objects"][0]
    assert obj["resource_uri"] == f"{BASE}/task/{obj['id']}/" and obj["status"] == "5"
    assert "log" not in obj and "outputs" not in obj, "lists leave the logs out"


@pytest.mark.parametrize("path", [DEPLOYMENTS, COMMANDS, TASKS])
def test_order_by_newest_first_reverses_the_list(any_client, any_worker_plan, path):
    user, headers = with_key(userid="jane", email="jane@example.com")
    deployments_for(user, user, user)

    def ids(query):
        response = any_client.get(f"{path}?{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return [obj["id"] for obj in response.get_json()["objects"]]

    oldest_first = ids("")
    assert len(oldest_first) == 3
    assert ids("order_by=created_at") == oldest_first
    assert ids("order_by=-created_at") == oldest_first[::-1]
    assert ids("order_by=-created_at&limit=2&offset=1") == oldest_first[::-1][1:3]


def test_the_page_links_keep_the_filters(client, admin, worker_plan):
    jane = make_user(userid="jane", email="jane+ops@example.com")
    bob = make_user(userid="bob", email="bob@example.com")
    _, headers = admin
    deployments_for(jane, bob, jane, bob, jane)
    query = "user=jane&order_by=-created_at&limit=1&offset=1"
    meta = client.get(f"{DEPLOYMENTS}?{query}", headers=headers).get_json()["meta"]
    assert meta["total_count"] == 3
    assert meta["next"] == f"{DEPLOYMENTS}?user=jane&order_by=-created_at&limit=1&offset=2"
    assert meta["previous"] == f"{DEPLOYMENTS}?user=jane&order_by=-created_at&limit=1&offset=0"
    last = client.get(meta["next"], headers=headers).get_json()
    assert [obj["user"] for obj in last["objects"]] == ["jane"] and last["meta"]["next"] is None
    # the + of an email survives the link (encoded), and the filter still applies on the next page
    body = client.get(f"{COMMANDS}?user__email=jane%2Bops@example.com&limit=2", headers=headers).get_json()
    assert body["meta"]["total_count"] == 3 and body["meta"]["next"]
    following = client.get(body["meta"]["next"], headers=headers).get_json()
    assert following["meta"]["total_count"] == 3
    assert [obj["user"] for obj in following["objects"]] == ["jane"]


@pytest.mark.parametrize(
    "path, query, name",
    [
        (DEPLOYMENTS, "status=7", "status"),
        (DEPLOYMENTS, "status=completed", "status"),
        (DEPLOYMENTS, "status=", "status"),
        (DEPLOYMENTS, "health=bogus", "health"),
        (DEPLOYMENTS, "limit=0", "limit"),
        (DEPLOYMENTS, "limit=101", "limit"),
        (DEPLOYMENTS, "limit=abc", "limit"),
        (DEPLOYMENTS, "limit=1.5", "limit"),
        (DEPLOYMENTS, "offset=-1", "offset"),
        (DEPLOYMENTS, "offset=99999999999999999999", "offset"),
        (DEPLOYMENTS, "order_by=name", "order_by"),
        (DEPLOYMENTS, "order_by=created_at;drop table users", "order_by"),
        (DEPLOYMENTS, "format=xml", "format"),
        (DEPLOYMENTS, "phase=install", "phase"),
        (DEPLOYMENTS, "foo=1", "foo"),
        (DEPLOYMENTS, "user__username=jane", "user__username"),
        (COMMANDS, "deployment=abc", "deployment"),
        (COMMANDS, "deployment=0", "deployment"),
        (COMMANDS, "deployment=99999999999", "deployment"),
        (COMMANDS, "phase=deploy", "phase"),
        (COMMANDS, "status=7", "status"),
        (COMMANDS, "health=healthy", "health"),
        (COMMANDS, "limit=101", "limit"),
        (TASKS, "command=abc", "command"),
        (TASKS, "command=-1", "command"),
        (TASKS, "deployment=abc", "deployment"),
        (TASKS, "status=1.0", "status"),
        (TASKS, "user=jane", "user"),
        (TASKS, "offset=-1", "offset"),
    ],
)
def test_bad_and_unknown_filters_are_400s_naming_the_parameter(client, jane, path, query, name):
    _, headers = jane
    response = client.get(f"{path}?{query}", headers=headers)
    body = assert_error(response, 400, "bad_request")
    assert body["message"].startswith(name) or f"'{name}'" in body["message"], body["message"]


# the SQL a list costs: bounded, whatever the page size (no query per object)


def statements_for(client, url, headers):
    with counting_statements() as statements:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_json()
    return len(statements), response.get_json()


def many_runs(count):
    """``count`` deployments of as many users (half of them with an admin as the issuer), one task each."""
    admin = make_user(userid="ops", email="ops@example.com", admin=True)
    plan = make_plan(name="worker", one_per_user=False)
    for n in range(count):
        user = make_user(userid=f"u{n}", email=f"u{n}@example.com", password=None)
        command = issue(plan.name, user, issuer=admin if n % 2 else None)
        db.session.add(
            ServiceTask(
                command_id=command.id,
                deployment_id=command.deployment_id,
                position=1,
                name="step",
                step={"kind": "task"},
                log="done",
            )
        )
    db.session.commit()


@pytest.mark.parametrize("path", [DEPLOYMENTS, COMMANDS, TASKS])
def test_a_list_page_costs_the_same_statements_for_5_or_50_objects(any_client, any_app, path):
    many_runs(60)
    _, headers = with_key(userid="root", email="root@example.com", admin=True)
    any_client.get(path, headers=headers)  # the key's first use is recorded once: not part of the count
    small, body = statements_for(any_client, f"{path}?limit=5", headers)
    assert len(body["objects"]) == 5 and body["meta"]["total_count"] == 60
    large, body = statements_for(any_client, f"{path}?limit=50", headers)
    assert len(body["objects"]) == 50
    assert small == large, f"{small} statements for 5 objects, {large} for 50: a query per object"
    assert large <= 4, "the key, the count and the page (with its joins)"
    filtered, body = statements_for(any_client, f"{path}?limit=50&order_by=-created_at", headers)
    assert filtered == large and len(body["objects"]) == 50


# task detail: the log and the outputs, secrets masked


SECRET_PASSWORD = "Zq9-generated-pw"
PARAM_SECRET = "hunter2-very-secret"
STEP_SECRET = "step-token-4711"


def task_with_secrets(user):
    """A completed install whose settings, params, log and outputs carry secrets (rows written directly)."""
    command = issue("worker", user, params=f"db_password={PARAM_SECRET},size=2")
    assert run(command.id) is Status.COMPLETED
    command = reload(command)
    url = f"mongodb://jane:{SECRET_PASSWORD}@mongo:27017/jane"
    deployment = command.deployment
    deployment.settings = {"default": {"OMEGA_MONGO_URL": url, "admin_password": "s3cr3t-admin"}}
    task = command.tasks[0]
    task.outputs = {"default": {"OMEGA_MONGO_URL": url}, "api_token": "tok-123456"}
    task.log = (
        f"connecting to {url}\nlogin with {SECRET_PASSWORD}\nparam {PARAM_SECRET}\n"
        "admin s3cr3t-admin\ntoken tok-123456\nall done\n"
    )
    db.session.commit()
    return task


def test_the_task_detail_shows_the_log_and_outputs_with_secrets_masked(any_client, any_worker_plan):
    user, headers = with_key(userid="jane", email="jane@example.com")
    task = task_with_secrets(user)
    response = any_client.get(f"{BASE}/task/{task.id}/", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resource_uri"] == f"{BASE}/task/{task.id}/"
    assert body["command"] == command_uri(task.command_id)
    assert body["deployment"] == f"{BASE}/deployment/{task.deployment_id}/"
    assert body["status"] == "5" and body["position"] == 1 and body["name"]
    log = body["log"]
    assert "connecting to mongodb://jane:********@mongo:27017/jane" in log
    assert "login with ********" in log and "param ********" in log
    assert "admin ********" in log and "token ********" in log and "all done" in log
    assert body["outputs"] == {
        "default": {"OMEGA_MONGO_URL": "mongodb://jane:********@mongo:27017/jane"},
        "api_token": "********",
    }
    text = response.get_data(as_text=True)
    for secret in (SECRET_PASSWORD, PARAM_SECRET, "s3cr3t-admin", "tok-123456"):
        assert secret not in text


def test_the_deployment_masks_its_params_and_settings_like_the_command(client, jane, worker_plan):
    user, headers = jane
    task = task_with_secrets(user)
    command = client.get(command_uri(task.command_id), headers=headers)
    assert command.get_json()["params"] == {"db_password": "********", "size": "2"}
    deployment = client.get(f"{BASE}/deployment/{task.deployment_id}/", headers=headers)
    settings = deployment.get_json()["settings"]
    assert settings["default"]["OMEGA_MONGO_URL"] == "mongodb://jane:********@mongo:27017/jane"
    assert settings["default"]["admin_password"] == "********"
    for response in (command, deployment, client.get(DEPLOYMENTS, headers=headers)):
        text = response.get_data(as_text=True)
        for secret in (SECRET_PASSWORD, PARAM_SECRET, "s3cr3t-admin"):
            assert secret not in text, (response.request.path, secret)


def test_a_secret_in_the_steps_params_is_masked_in_the_task_detail(client, jane, scripts):
    user, headers = jane
    write_script("show.sh", 'echo "token is $OMEGAOPS_PARAM_API_TOKEN"\n')
    make_script_plan("worker", f"- script: show.sh\n  params: api_token={STEP_SECRET}")
    command = post(client, headers, client_body(user)).get_json()
    assert run(command["id"]) is Status.COMPLETED
    [task] = client.get(command_uri(command["id"]), headers=headers).get_json()["tasks"]
    response = client.get(task["resource_uri"], headers=headers)
    assert response.status_code == 200
    assert "token is ********" in response.get_json()["log"], "the engine masked the log"
    assert STEP_SECRET not in response.get_data(as_text=True), response.get_json()["step"]


def test_someone_elses_task_is_a_404_and_an_admin_sees_it(client, jane, bob, admin, worker_plan):
    user, headers = jane
    _, bob_headers = bob
    _, admin_headers = admin
    task = task_with_secrets(user)
    path = f"{BASE}/task/{task.id}/"
    assert_error(client.get(path, headers=bob_headers), 404, "not_found")
    response = client.get(path, headers=admin_headers)
    assert response.status_code == 200 and SECRET_PASSWORD not in response.get_data(as_text=True)
    assert client.get(path, headers=headers).status_code == 200


def test_a_logged_in_browser_reads_its_own_task(client, login, worker_plan):
    user = make_user(userid="jane", email="jane@example.com")
    other = make_user(userid="bob", email="bob@example.com")
    task = task_with_secrets(user)
    login(other)
    assert_error(client.get(f"{BASE}/task/{task.id}/"), 404, "not_found")
    client.post("/logout")
    login(user)
    response = client.get(f"{BASE}/task/{task.id}/")
    assert response.status_code == 200 and "********" in response.get_json()["log"]


# Idempotency-Key


def idem(headers, key):
    return {**headers, "Idempotency-Key": key}


def test_the_same_key_and_body_answer_the_first_command_again(any_client, any_worker_plan):
    user, headers = with_key(userid="jane", email="jane@example.com")
    body = client_body(user)
    first = post(any_client, idem(headers, "key-1"), body)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = post(any_client, idem(headers, "key-1"), body)
    assert again.status_code == 201, again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    # the same content, spaced and ordered differently, is the same request
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    third = any_client.post(COMMAND, data=reordered, content_type="application/json", headers=idem(headers, "key-1"))
    assert third.status_code == 201 and third.get_json()["id"] == first.get_json()["id"]
    assert commands_in_db() == 1
    assert db.session.scalar(select(func.count()).select_from(ServiceDeployment)) == 1


def test_the_path_with_or_without_its_slash_is_the_same_request(client, jane, worker_plan):
    """``command`` and ``command/`` are one resource (the client posts without the slash)."""
    user, headers = jane
    first = post(client, idem(headers, "key-1"), client_body(user), path=COMMAND)
    again = post(client, idem(headers, "key-1"), client_body(user), path=COMMANDS)
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    assert commands_in_db() == 1


def test_the_same_key_with_another_body_is_a_409(client, jane, worker_plan):
    user, headers = jane
    first = post(client, idem(headers, "key-1"), client_body(user))
    assert first.status_code == 201
    response = post(client, idem(headers, "key-1"), client_body(user, params="size=3"))
    assert_error(response, 409, "idempotency_key_reused", "key-1")
    assert commands_in_db() == 1


def test_different_users_use_the_same_key_independently(client, jane, bob, worker_plan):
    user, headers = jane
    other, other_headers = bob
    mine = post(client, idem(headers, "shared-key"), client_body(user))
    theirs = post(client, idem(other_headers, "shared-key"), client_body(other))
    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.get_json()["id"] != theirs.get_json()["id"]
    assert theirs.get_json()["user"] == "bob"
    # and bob's key does not touch jane's: the same body under bob's key again replays bob's
    again = post(client, idem(other_headers, "shared-key"), client_body(other))
    assert again.get_json()["id"] == theirs.get_json()["id"]
    assert commands_in_db() == 2


def test_a_refused_request_is_not_remembered(client, jane, worker_plan):
    user, headers = jane
    bad = post(client, idem(headers, "key-1"), client_body(user, params="bad"))
    assert_error(bad, 400, "bad_request")
    assert db.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    fixed = post(client, idem(headers, "key-1"), client_body(user))
    assert fixed.status_code == 201, fixed.get_json()
    assert "Idempotent-Replayed" not in fixed.headers
    assert commands_in_db() == 1


def test_a_conflict_is_not_remembered_either(client, jane, worker_plan):
    user, headers = jane
    install = post(client, headers, client_body(user)).get_json()
    refused = post(client, idem(headers, "upd-1"), client_body(user, phase="update"))
    assert_error(refused, 409, "conflict")
    run(install["id"])
    response = post(client, idem(headers, "upd-1"), client_body(user, phase="update"))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("key", ["", "   ", "x" * 201, "with space", "naïve"])
def test_a_bad_idempotency_key_is_a_400(client, jane, worker_plan, key):
    user, headers = jane
    response = client.post(
        COMMAND,
        data=json.dumps(client_body(user)),
        content_type="application/json",
        headers={**headers, "Idempotency-Key": key.encode("utf-8").decode("latin-1")},
    )
    assert_error(response, 400, "bad_request", "Idempotency-Key")
    assert commands_in_db() == 0


# hard to break


@pytest.mark.parametrize(
    "data, words",
    [
        (b'{"offering": "worker", "phase": ', ["JSON"]),
        (b"{'offering': 'worker'}", ["JSON"]),
        (b'{"offering": "w\xff\xfeorker", "phase": "install"}', ["UTF-8"]),
        (b'[{"offering": "worker", "phase": "install"}]', ["object"]),
        (b'"install"', ["object"]),
        (b"null", ["object"]),
        (b'{"offering": "worker", "phase": "install", "params": NaN}', ["NaN"]),
        (b'{"offering": "worker", "phase": "install", "deployment": Infinity}', ["Infinity"]),
        (b"", ["JSON"]),
        (b"[" * 100_000 + b"]" * 100_000, []),
    ],
)
def test_malformed_bodies_are_400s(client, jane, worker_plan, data, words):
    _, headers = jane
    response = client.post(COMMAND, data=data, content_type="application/json", headers=headers)
    assert_error(response, 400, "bad_request", *words)
    assert commands_in_db() == 0


def test_a_body_over_the_size_limit_is_a_413(client, app, jane, worker_plan):
    user, headers = jane
    body = json.dumps(client_body(user, params="size=" + "x" * app.config["MAX_CONTENT_LENGTH"]))
    response = client.post(COMMAND, data=body, content_type="application/json", headers=headers)
    assert_error(response, 413, "request_entity_too_large")
    response = client.post(COMMAND, data=body, content_type="application/json", headers=idem(headers, "big-1"))
    assert_error(response, 413, "request_entity_too_large")
    assert commands_in_db() == 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("offering", "w" * 10_000),
        ("offering", "wor\u0000ker"),
        ("offering", "wörker-\U0001f600"),
        ("params", "size=\u0000"),
        ("params", "k=" + "v" * 100_000),
    ],
)
def test_odd_strings_in_the_body_never_cause_a_500(any_client, any_worker_plan, field, value):
    user, headers = with_key(userid="jane", email="jane@example.com")
    response = post(any_client, headers, client_body(user, **{field: value}))
    assert 400 <= response.status_code < 500 or response.status_code == 201, response.get_json()
    assert response.mimetype == "application/json"


@pytest.mark.parametrize("ident", ["j" * 10_000, "\U0001f600@example.com", "' or 1=1 --"])
def test_an_admin_naming_an_odd_user_gets_a_404(any_client, any_worker_plan, ident):
    _, headers = with_key(userid="root", email="root@example.com", admin=True)
    response = post(any_client, headers, {"offering": "worker", "user": ident, "phase": "install"})
    assert_error(response, 404, "not_found")


def test_a_nul_in_the_body_is_a_400_before_the_database_sees_it(any_client, any_worker_plan):
    # PostgreSQL refuses NUL characters in text: they never get that far
    _, headers = with_key(userid="root", email="root@example.com", admin=True)
    response = post(any_client, headers, {"offering": "worker", "user": "ja\u0000ne", "phase": "install"})
    assert_error(response, 400, "bad_request", "NUL")


@pytest.mark.parametrize(
    "path, query",
    [
        (DEPLOYMENTS, "user__email=ja%00ne@example.com"),
        (DEPLOYMENTS, "user=ja%00ne"),
        (DEPLOYMENTS, "name=wor%00ker"),
        (COMMANDS, "name=wor%00ker"),
        (COMMANDS, "user__email=" + "x" * 5000),
        (DEPLOYMENTS, "user=%F0%9F%98%80"),
    ],
)
def test_odd_filter_values_never_cause_a_500(any_client, any_worker_plan, path, query):
    _, headers = with_key(userid="root", email="root@example.com", admin=True)
    response = any_client.get(f"{path}?{query}", headers=headers)
    assert response.status_code in (200, 400), (response.status_code, response.get_json())
    assert response.mimetype == "application/json"
    if response.status_code == 200:
        assert response.get_json()["objects"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Basic amFuZTpwdw=="},
        {"Authorization": "ApiKey jane"},
        {"Authorization": "ApiKey :"},
        {"Authorization": "ApiKey jane:" + "k" * 5000},
    ],
)
def test_bad_credentials_are_401s_never_5xx(client, jane, worker_plan, headers):
    user, _ = jane
    response = client.post(COMMAND, json=client_body(user), headers=headers)
    assert_error(response, 401, "unauthorized")
    assert commands_in_db() == 0


def test_methods_not_offered_are_405s_in_json(client, jane, worker_plan):
    user, headers = jane
    command = post(client, headers, client_body(user)).get_json()
    for method, path in (
        ("delete", command["resource_uri"]),
        ("put", command["resource_uri"]),
        ("get", f"{command['resource_uri']}cancel/"),
        ("post", DEPLOYMENTS),
        ("delete", f"{BASE}/deployment/{command['deployment_id']}/"),
    ):
        response = getattr(client, method)(path, headers=headers)
        assert response.status_code == 405, (method, path, response.status_code)
        assert response.mimetype == "application/json" and response.get_json()["error"]
