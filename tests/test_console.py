"""The admin console: dashboard, users, plans and configurations, deployments, commands, tasks, operations."""

import html
import json
import re

import pytest
import yaml
from rq import Queue

from app import accounts
from app.extensions import db
from app.jobs.queues import get_redis
from app.models import ApiKey, ServiceCommand, ServiceConfiguration, ServicePlan, Status, User
from app.ops import engine

from .conftest import make_app
from .engine_helpers import issue, make_script_plan, reload, write_script
from .factories import PASSWORD, make_plan, make_user
from .test_mail import smtp_fixture  # noqa: F401 -- registers the smtp fixture here


@pytest.fixture
def admin(app, login):
    user = make_user(email="root@example.com", userid="root", admin=True)
    login(user)
    return user


@pytest.fixture
def plans(app, scripts):
    write_script("ok.sh", "echo step ok api_token=$OMEGAOPS_PARAM_API_TOKEN\n")
    write_script("fail.sh", "echo about to fail\necho no space left >&2\nexit 7\n")
    make_script_plan(
        "worker",
        """
        - script: ok.sh
          name: prepare
          phases: [install, update, uninstall, check]
        """,
        one_per_user=False,
    )
    make_script_plan("broken", "- script: fail.sh\n  name: explode\n", one_per_user=False)


def text(response) -> str:
    return response.get_data(as_text=True)


def flashed(client) -> str:
    return text(client.get("/admin/"))


# dashboard


def test_dashboard_counts_what_is_queued_or_running_now_however_old(client, admin, plans):
    from datetime import timedelta

    from app.models.types import utcnow

    old = issue("worker", make_user())
    old.created_at = utcnow() - timedelta(days=3)  # issued days ago, still waiting (e.g. no worker ran)
    db.session.commit()
    page = text(client.get("/admin/"))
    running = re.search(r'<div class="h3 mb-0">(\d+)</div>queued or running', page)
    assert running and running.group(1) == "1"


def test_dashboard_counts_charts_failures_and_workers(client, admin, plans):
    user = make_user()
    ok = issue("worker", user)
    engine.execute(ok.id, worker="test")
    failed = issue("broken", user)
    engine.execute(failed.id, worker="test")
    page = text(client.get("/admin/"))
    assert "new this week" in page and "live deployments" in page
    assert page.count("<svg") == 4 and "Deployments by status" in page and "Invoiced per month" in page
    assert f'href="/admin/servicecommand/details/?id={failed.id}"' in page and "script error" in page
    assert "live workers" in page


# users


def test_user_list_searches_and_filters(client, admin):
    make_user(email="grace@example.com", last_name="Hopper")
    make_user(email="alan@example.com", active=False)
    page = text(client.get("/admin/user/?search=hopper"))
    assert "grace@example.com" in page and "alan@example.com" not in page
    page = text(client.get("/admin/user/"))
    assert "alan@example.com" in page


def test_user_actions_activate_grant_admin_and_never_lock_oneself_out(client, admin):
    user = make_user()
    client.post(f"/admin/user/{user.id}/active/off")
    assert reload(user).active is False
    client.post(f"/admin/user/{user.id}/active/on")
    client.post(f"/admin/user/{user.id}/admin/on")
    user = reload(user)
    assert user.active and user.admin
    client.post(f"/admin/user/{admin.id}/active/off")
    assert reload(admin).active is True
    assert "You cannot deactivate yourself" in flashed(client)
    response = client.post(f"/admin/user/{user.id}/nonsense/on")
    assert response.status_code == 302 and "Unknown action" in flashed(client)
    assert client.post("/admin/user/999999/active/off").status_code == 404


def test_resend_confirmation_mails_a_new_link(client, admin, smtp):
    user = make_user(confirmed=False)
    client.post(f"/admin/user/{user.id}/resend-confirmation")
    (message,) = smtp.messages
    assert message["To"] == user.email and "/confirm/" in message.get_payload(decode=True).decode()
    confirmed = make_user()
    client.post(f"/admin/user/{confirmed.id}/resend-confirmation")
    assert len(smtp.messages) == 1 and "confirmed already" in flashed(client)


def test_user_details_show_keys_by_prefix_only_and_revoke_them(client, admin, plans):
    user = make_user()
    api_key, key = accounts.create_api_key(user, "laptop")
    db.session.commit()
    issue("worker", user)
    page = text(client.get(f"/admin/user/details/?id={user.id}"))
    assert key not in page and api_key.key_hash not in page and f"{api_key.prefix}…" in page
    assert 'id="deployments"' in page and 'id="commands"' in page and "worker" in page
    assert "password_hash" not in page.lower().replace(" ", "_")
    client.post(f"/admin/user/{user.id}/keys/{api_key.id}/revoke")
    assert db.session.get(ApiKey, api_key.id).revoked_at is not None
    other = make_user()
    client.post(f"/admin/user/{other.id}/keys/{api_key.id}/revoke")
    assert "has no API key" in flashed(client)


# plans and configurations


def test_plan_spec_editor_saves_steps_in_order_as_a_new_version(client, admin, plans):
    plan = ServicePlan.by_name("worker")
    page = text(client.get(f"/admin/serviceplan/{plan.id}/spec"))
    assert "plan: worker" in page and "ok.sh" in page
    spec = yaml.safe_load(html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1)))
    spec["steps"] = [
        {"script": "ok.sh", "name": "first", "phases": ["install"]},
        {"script": "ok.sh", "name": "second", "phases": ["install", "update"]},
    ]
    response = client.post(f"/admin/serviceplan/{plan.id}/spec", data={"spec": yaml.safe_dump(spec)})
    assert response.status_code == 302
    current = reload(plan).current_configuration
    assert current.version == 2 and [s.name for s in current.steps] == ["first", "second"]
    # the same again: nothing new
    client.post(f"/admin/serviceplan/{plan.id}/spec", data={"spec": yaml.safe_dump(spec)})
    assert reload(plan).current_configuration.version == 2 and "nothing changed" in flashed(client)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("plan: worker\nsteps:\n  - script: missing.sh\n", "missing.sh"),
        ("plan: worker\nsteps:\n  - script: ok.sh\n    phases: [sometimes]\n", "sometimes"),
        ("plan: worker\nsteps: [", "not valid YAML"),
        ("plan: other\n", "changes 'worker' only"),
        ("plan: worker\ncolour: red\n", "unknown field 'colour'"),
    ],
)
def test_plan_spec_editor_refuses_bad_specs_and_keeps_the_text(client, admin, plans, spec, message):
    plan = ServicePlan.by_name("worker")
    response = client.post(f"/admin/serviceplan/{plan.id}/spec", data={"spec": spec})
    page = text(response)
    assert response.status_code == 200 and 'id="spec-error"' in page and message in page.replace("&#39;", "'")
    assert reload(plan).current_configuration.version == 1


def test_import_and_export_plans_as_yaml(client, admin, plans):
    plan = ServicePlan.by_name("worker")
    response = client.get(f"/admin/serviceplan/{plan.id}/export")
    assert response.mimetype == "application/yaml" and "worker.yaml" in response.headers["Content-Disposition"]
    exported = yaml.safe_load(response.data)
    assert exported[0]["plan"] == "worker" and exported[0]["steps"][0]["script"] == "ok.sh"
    exported[0]["plan"] = "worker2"
    exported[0]["title"] = "Second worker"
    page = text(client.post("/admin/serviceplan/import", data={"spec": yaml.safe_dump(exported)}))
    assert "worker2: created, configuration v1" in page
    assert ServicePlan.by_name("worker2").title == "Second worker"
    # all or nothing: one bad plan writes none
    bad = exported + [{"plan": "worker3", "steps": [{"script": "nope.sh"}]}]
    bad[0]["title"] = "changed"
    page = text(client.post("/admin/serviceplan/import", data={"spec": yaml.safe_dump(bad)}))
    assert 'id="spec-error"' in page and "nope.sh" in page
    assert ServicePlan.by_name("worker2").title == "Second worker" and ServicePlan.by_name("worker3") is None
    page = text(client.post("/admin/serviceplan/import", data={"spec": ""}))
    assert "paste a spec or choose a file" in page


def test_secret_env_is_masked_in_exports_and_kept_on_import(client, admin, plans):
    make_script_plan("vault", "- script: ok.sh\n", env="DB_PASSWORD: hunter22")
    plan = ServicePlan.by_name("vault")
    exported = text(client.get(f"/admin/serviceplan/{plan.id}/export"))
    assert "hunter22" not in exported and "********" in exported
    assert "hunter22" not in text(client.get(f"/admin/serviceplan/{plan.id}/spec"))
    client.post("/admin/serviceplan/import", data={"spec": exported.replace("ok.sh\n", "ok.sh\n  name: renamed\n")})
    current = reload(plan).current_configuration
    assert current.env["DB_PASSWORD"] == "hunter22"


def test_configuration_versions_side_by_side(client, admin, plans):
    plan = ServicePlan.by_name("worker")
    make_script_plan("worker", "- script: ok.sh\n  name: renamed\n", one_per_user=False)
    page = text(client.get(f"/admin/serviceplan/{plan.id}/versions"))
    assert "version 1" in page and "version 2" in page and 'class="diff"' in page and 'class="diff_chg"' in page
    # the differences are coloured (the console's stylesheet styles difflib's classes), no cryptic f/n/t links
    assert "diff_next" not in page and ">f</a>" not in page and 'id="versions-legend"' in page
    css = client.get("/static/css/console.css")
    assert b".diff_chg" in css.data and b".diff_add" in css.data and b".diff_sub" in css.data
    css.close()
    page = text(client.get(f"/admin/serviceplan/{plan.id}/versions?a=1&b=99"))
    assert "Choose two versions" in page
    assert client.get(f"/admin/serviceplan/{plan.id}/versions?a=x").status_code == 200
    details = text(client.get(f"/admin/serviceplan/details/?id={plan.id}"))
    assert "v2" in details and "diff to v1" in details
    configuration = db.session.query(ServiceConfiguration).filter_by(plan_id=plan.id, version=1).one()
    assert "prepare" in text(client.get(f"/admin/serviceconfiguration/details/?id={configuration.id}"))


def test_plan_form_creates_plans_and_keeps_names(client, admin, plans):
    response = client.post("/admin/serviceplan/new/", data={"name": "Bad Name!", "title": "x"})
    assert "lowercase letters" in text(response) and ServicePlan.by_name("Bad Name!") is None
    client.post("/admin/serviceplan/new/", data={"name": "jupyter", "title": "Notebooks", "offered": "y"})
    plan = ServicePlan.by_name("jupyter")
    assert plan.title == "Notebooks" and plan.offered
    client.post(f"/admin/serviceplan/edit/?id={plan.id}", data={"name": "renamed", "title": "Notebooks 2"})
    assert reload(plan).name == "jupyter"


# deployments, commands, tasks


def test_deployment_details_mask_secrets_and_issue_commands(client, admin, plans):
    user = make_user()
    command = issue("worker", user, params="size=1,api_token=s3cr3tvalue")
    engine.execute(command.id, worker="test")
    deployment_id = command.deployment_id
    page = text(client.get(f"/admin/servicedeployment/details/?id={deployment_id}"))
    assert "s3cr3tvalue" not in page and "********" in page and 'id="deployment-actions"' in page
    assert "s3cr3tvalue" not in text(client.get(f"/admin/servicetask/details/?id={command.tasks[0].id}"))

    for action, data, phase, params in [
        ("scale", {"size": "3"}, "update", {"size": "3"}),
        ("update", {"params": "size=2,x=yes"}, "update", {"size": "2", "x": "yes"}),
        ("check", {}, "check", {}),
        ("uninstall", {}, "uninstall", {}),
    ]:
        response = client.post(f"/admin/servicedeployment/{deployment_id}/command", data={"action": action, **data})
        issued = db.session.get(ServiceCommand, int(response.headers["Location"].rsplit("=", 1)[1]))
        assert issued.phase == phase and issued.params == params and issued.issuer_id == admin.id
        engine.execute(issued.id, worker="test")
    assert "REMOVED" in text(client.get(f"/admin/servicedeployment/details/?id={deployment_id}"))


def test_deployment_actions_say_why_they_are_refused(client, admin, plans):
    command = issue("worker", make_user())
    url = f"/admin/servicedeployment/{command.deployment_id}/command"
    client.post(url, data={"action": "scale", "size": "many"})
    assert "params: size: must be a whole number from 0 to 16" in flashed(client)  # the plan's declaration
    client.post(url, data={"action": "update", "params": "size=1"})
    assert "still INITIATED" in flashed(client)
    client.post(url, data={"action": "explode"})
    assert "Unknown action" in flashed(client)
    assert db.session.query(ServiceCommand).count() == 1


def test_admin_finds_a_failed_command_reads_its_log_and_retries(client, admin, plans):
    failed = issue("broken", make_user())
    engine.execute(failed.id, worker="test")
    page = text(client.get("/admin/servicecommand/?flt0_0=9"))
    assert f"/admin/servicecommand/details/?id={failed.id}" in page
    page = text(client.get(f"/admin/servicecommand/details/?id={failed.id}"))
    assert 'id="retry"' in page and "explode" in page and "exited with code 7" in page
    task = reload(failed).tasks[0]
    page = text(client.get(f"/admin/servicetask/details/?id={task.id}"))
    assert 'id="task-log"' in page and "no space left" in page and "/static/js/task-log.js" in page
    response = client.post(f"/admin/servicecommand/{failed.id}/retry")
    again = db.session.get(ServiceCommand, int(response.headers["Location"].rsplit("=", 1)[1]))
    assert again.retry_of_id == failed.id and again.status == Status.INITIATED
    client.post(f"/admin/servicecommand/{again.id}/cancel")
    assert reload(again).status == Status.FAILED and reload(again).failure_reason == "cancelled"
    client.post(f"/admin/servicecommand/{again.id}/cancel")
    assert "FAILED already" in flashed(client)


def test_task_log_endpoint_follows_from_an_offset(client, admin, plans):
    command = issue("broken", make_user())
    engine.execute(command.id, worker="test")
    task = reload(command).tasks[0]
    data = client.get(f"/admin/servicetask/{task.id}/log").get_json()
    assert "no space left" in data["text"] and data["final"] and data["offset"] == len(data["text"])
    data = client.get(f"/admin/servicetask/{task.id}/log?offset={data['offset']}").get_json()
    assert data["text"] == "" and not data["reset"]
    data = client.get(f"/admin/servicetask/{task.id}/log?offset=999999").get_json()
    assert data["reset"] and "no space left" in data["text"]
    response = client.get(f"/admin/servicetask/{task.id}/log?offset=abc")
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"


def filter_arg(page: str, label: str, operation: str) -> str:
    """The ``flt0_<n>`` parameter of a list's filter, read off the page as the browser does."""
    groups = json.loads(html.unescape(re.search(r'id="filter-groups-data"[^>]*>(.*?)</div>', page, re.S).group(1)))
    (index,) = [f["index"] for f in groups[label] if f["operation"] == operation]
    return f"flt0_{index}"


def test_list_filters_for_status_plan_health_and_user(client, admin, plans):
    ada, bob = make_user(email="ada@example.com"), make_user(email="bob@example.com")
    ok = issue("worker", ada)
    engine.execute(ok.id, worker="test")
    failed = issue("broken", bob)
    engine.execute(failed.id, worker="test")
    page = text(client.get("/admin/servicedeployment/"))
    assert "ada@example.com" in page and "bob@example.com" in page and "&lt;User" not in page

    def rows(url):
        return set(re.findall(r'<td class="col-id">\s*(\d+)\s*</td>', text(client.get(url))))

    deployments = "/admin/servicedeployment/"
    assert rows(f"{deployments}?{filter_arg(page, 'Status', 'equals')}=9") == {str(failed.deployment_id)}
    assert rows(f"{deployments}?{filter_arg(page, 'Plan', 'equals')}=worker") == {str(ok.deployment_id)}
    assert rows(f"{deployments}?{filter_arg(page, 'User email', 'contains')}=bob") == {str(failed.deployment_id)}
    assert rows(f"{deployments}?{filter_arg(page, 'Health', 'equals')}=unknown") == {
        str(ok.deployment_id),
        str(failed.deployment_id),
    }
    commands = "/admin/servicecommand/"
    page = text(client.get(commands))
    assert rows(f"{commands}?{filter_arg(page, 'Failure Reason', 'equals')}=script error") == {str(failed.id)}
    assert rows(f"{commands}?{filter_arg(page, 'Phase', 'equals')}=install") == {str(ok.id), str(failed.id)}
    tasks = "/admin/servicetask/"
    page = text(client.get(tasks))
    task_rows = rows(f"{tasks}?{filter_arg(page, 'Command Id', 'equals')}={failed.id}")
    assert task_rows == {str(reload(failed).tasks[0].id)}


# operations


def test_operations_lists_periodic_jobs_queues_workers_and_failed_jobs(client, admin, app):
    queue = Queue("periodic", connection=get_redis())
    job = queue.enqueue("app.jobs.periodic.no_such_function")
    from rq import SimpleWorker

    SimpleWorker([queue], connection=get_redis()).work(burst=True)
    page = text(client.get("/admin/operations/"))
    assert "app.jobs.periodic.dispatch_initiated" in page and "every 5 s" in page
    assert 'id="queues"' in page and "provisioning" in page
    assert job.id in page
    client.post(f"/admin/operations/failed/{job.id}/delete")
    page = text(client.get("/admin/operations/"))
    assert job.id not in page[page.index('id="failed-jobs"') :]
    client.post("/admin/operations/failed/nosuchjob/requeue")
    assert "There is no job nosuchjob" in text(client.get("/admin/operations/"))


def test_operations_says_when_redis_does_not_answer(sqlite_url, tmp_path, redis_url):
    app = make_app(sqlite_url, "redis://127.0.0.1:1/0", tmp_path)
    with app.app_context():
        db.create_all()
        admin = make_user(admin=True)
        client = app.test_client()
        client.post("/login", data={"email": admin.email, "password": PASSWORD})
        assert "Redis does not answer" in text(client.get("/admin/operations/"))
        assert "Redis does not answer" in text(client.get("/admin/"))
        db.session.remove()
        db.drop_all()


# CSRF


def test_console_writes_need_the_csrf_token(sqlite_url, redis_url, tmp_path):
    app = make_app(sqlite_url, redis_url, tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.create_all()
        admin = make_user(admin=True)
        user = make_user()
        client = app.test_client()
        page = text(client.get("/login"))
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        client.post("/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": token})
        response = client.post(f"/admin/user/{user.id}/active/off")
        assert response.status_code == 400 and db.session.get(User, user.id).active
        page = text(client.get(f"/admin/user/details/?id={user.id}"))
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        client.post(f"/admin/user/{user.id}/active/off", data={"csrf_token": token})
        db.session.expire_all()
        assert db.session.get(User, user.id).active is False
        db.session.remove()
        db.drop_all()


def test_commands_per_day_counts_by_utc_day_on_both_databases(any_app):
    from datetime import UTC, datetime, timedelta

    from app.views.admin.dashboard import DAYS, commands_per_day

    make_plan()
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    finished = [
        now.replace(hour=0, minute=0, second=0),  # today, first second
        now - timedelta(days=1, hours=-11, seconds=1),  # yesterday 23:59:59
        now - timedelta(days=DAYS + 1),  # before the window
    ]
    for when in finished:
        command = issue("omegaml", make_user())
        engine.execute(command.id, worker="test")
        db.session.execute(
            ServiceCommand.__table__.update().where(ServiceCommand.id == command.id).values(finished_at=when)
        )
    failed = issue("omegaml", make_user())
    engine.request_cancel(failed)
    db.session.execute(ServiceCommand.__table__.update().where(ServiceCommand.id == failed.id).values(finished_at=now))
    db.session.commit()
    days, series = commands_per_day(now)
    assert days[-1] == "2026-11-28" and days[-2] == "2026-11-27" and len(days) == DAYS
    assert series["COMPLETED"][-1] == 1 and series["COMPLETED"][-2] == 1 and sum(series["COMPLETED"]) == 2
    assert series["FAILED"][-1] == 1 and sum(series["FAILED"]) == 1
