"""Self-service pages: the catalog and deployments at /services, install / update / scale / uninstall,
a command's live progress at /commands/<id> and the JSON it polls, retry and cancel."""

import re

import pytest

from app.extensions import db
from app.models import FailureReason, ServiceCommand, ServiceDeployment, Status
from app.models.types import utcnow
from app.ops import engine

from .engine_helpers import issue, make_script_plan, reload, write_script
from .factories import make_plan, make_user


@pytest.fixture
def worker_plan(app, scripts):
    # like services/scripts/worker/worker.py, it reports the size it runs: the pages offer to scale it
    write_script(
        "ok.sh",
        """
        echo installing $OMEGAOPS_PARAM_SIZE
        echo "{\\"worker\\": {\\"size\\": ${OMEGAOPS_PARAM_SIZE:-1}}}" > "$OMEGAOPS_OUTPUT"
        """,
    )
    write_script("fail.sh", "echo about to fail\necho the disk is full >&2\nexit 3\n")
    # in the original spec format (no `parameters:`): the k=v field, and the params its steps default
    make_script_plan(
        "worker",
        """
        - script: ok.sh
          name: prepare
          params: size=1,x=,api_token=
          phases: [install, update, uninstall]
        - script: ok.sh
          name: start
          phases: [install, update]
        """,
        one_per_user=False,
        parameters="",
    )
    make_script_plan("broken", "- script: fail.sh\n  name: explode\n", one_per_user=False)


@pytest.fixture
def user(app, login):
    user = make_user()
    login(user)
    return user


def command_id_of(response) -> int:
    match = re.fullmatch(r"/commands/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def test_logged_in_users_land_on_their_services(client, user):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/services"


def test_services_shows_the_catalog_and_the_next_steps_after_signup(client, user, worker_plan):
    make_plan()  # omegaml
    page = client.get("/services").get_data(as_text=True)
    assert 'data-install="worker"' in page and 'data-install="omegaml"' in page
    assert 'id="getting-started"' in page
    assert f"om cloud login --apiurl http://localhost {user.userid} &lt;apikey&gt;" in page
    assert "Create an API key" in page


def test_getting_started_follows_the_omegaml_deployment_until_ready(client, user, app):
    make_plan()
    command = issue("omegaml", user)
    page = client.get("/services").get_data(as_text=True)
    assert "is being prepared" in page and f"/commands/{command.id}" in page
    engine.execute(command.id, worker="test")
    page = client.get("/services").get_data(as_text=True)
    assert "Your omega|ml service is ready" in page


def test_install_issues_a_command_and_shows_its_progress(client, user, worker_plan):
    # the form's prefix is the plan id: read it off the page rather than guess
    page = client.get("/services").get_data(as_text=True)
    prefix = re.search(r'name="(install-\d+)-params"[^>]*>', page[page.index('data-install="worker"') :]).group(1)
    response = client.post("/services/worker/install", data={f"{prefix}-params": "size=2"})
    assert response.status_code == 302
    command = db.session.get(ServiceCommand, command_id_of(response))
    assert command.phase == "install" and command.params == {"size": "2"} and command.issuer_id == user.id
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert f'data-progress-url="/commands/{command.id}/progress"' in page
    assert '<script src="/static/js/progress.js">' in page
    assert "0 of 2 steps done" in page and "prepare" in page and "start" in page


def test_install_with_bad_params_keeps_what_was_typed_and_says_why(client, user, worker_plan):
    page = client.get("/services").get_data(as_text=True)
    prefix = re.search(r'name="(install-\d+)-params"', page[page.index('data-install="worker"') :]).group(1)
    response = client.post("/services/worker/install", data={f"{prefix}-params": "size=2,,x"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "item 2 is empty" in page and 'value="size=2,,x"' in page
    assert db.session.query(ServiceCommand).count() == 0


def test_installing_a_plan_that_is_not_offered_is_a_404(client, user, app):
    make_plan(name="internal", offered=False)
    assert client.post("/services/internal/install", data={}).status_code == 404
    assert client.post("/services/nosuchplan/install", data={}).status_code == 404


def test_a_second_omegaml_is_refused_with_a_message(client, user, app):
    plan = make_plan()
    issue("omegaml", user)
    response = client.post("/services/omegaml/install", data={f"install-{plan.id}-params": ""})
    assert response.status_code == 409
    assert "already have deployment" in response.get_data(as_text=True)


def test_progress_json_follows_the_command_to_completion(client, user, worker_plan):
    command = issue("worker", user, params="size=1")
    data = client.get(f"/commands/{command.id}/progress").get_json()
    assert data["status"] == "INITIATED" and data["final"] is False
    assert [s["status"] for s in data["steps"]] == ["WAITING", "WAITING"] and data["percent"] == 0
    engine.execute(command.id, worker="test")
    response = client.get(f"/commands/{command.id}/progress")
    data = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert data["status"] == "COMPLETED" and data["final"] is True and data["status_code"] == "5"
    assert [s["status"] for s in data["steps"]] == ["COMPLETED", "COMPLETED"]
    assert data["percent"] == 100 and data["done"] == 2 and data["total"] == 2
    assert "installing 1" in data["log"]["tail"]


def test_a_failed_command_shows_the_reason_and_retries(client, user, worker_plan):
    command = issue("broken", user)
    engine.execute(command.id, worker="test")
    data = client.get(f"/commands/{command.id}/progress").get_json()
    assert data["status"] == "FAILED" and data["failure_reason"] == "script error"
    assert "the disk is full" in data["log"]["tail"] and data["steps"][0]["exit_code"] == 3
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert 'id="retry-form"' in page and "This install failed: a step exited with an error." in page
    response = client.post(f"/commands/{command.id}/retry")
    again = db.session.get(ServiceCommand, command_id_of(response))
    assert again.retry_of_id == command.id and again.status == Status.INITIATED
    # retrying a command that is not FAILED says why on the page
    response = client.post(f"/commands/{again.id}/retry", follow_redirects=True)
    assert "only a FAILED command can be retried" in response.get_data(as_text=True)


def test_cancel_stops_a_command_that_has_not_started(client, user, worker_plan):
    command = issue("worker", user)
    response = client.post(f"/commands/{command.id}/cancel", follow_redirects=True)
    assert "cancelled" in response.get_data(as_text=True)
    assert reload(command).status == Status.FAILED


def test_scale_update_and_uninstall_with_confirmation(client, user, worker_plan):
    command = issue("worker", user, params="size=1")
    engine.execute(command.id, worker="test")
    deployment_id = command.deployment_id
    page = client.get(f"/services/deployment/{deployment_id}").get_data(as_text=True)
    assert 'id="scale-form"' in page and 'value="1"' in page

    response = client.post(f"/services/deployment/{deployment_id}/scale", data={"scale-p0": "3"})
    scaled = db.session.get(ServiceCommand, command_id_of(response))
    assert scaled.phase == "update" and scaled.params == {"size": "3"}
    # busy: the next command is refused with the reason, the typed value kept
    response = client.post(f"/services/deployment/{deployment_id}/update", data={"params": "size=4,x=yes"})
    assert response.status_code == 409 and "still INITIATED" in response.get_data(as_text=True)
    assert 'value="size=4,x=yes"' in response.get_data(as_text=True)
    engine.execute(scaled.id, worker="test")

    response = client.post(f"/services/deployment/{deployment_id}/scale", data={"scale-p0": "-1"})
    assert response.status_code == 400 and "params: size: must be a whole number from 0" in response.get_data(
        as_text=True
    )

    page = client.get(f"/services/deployment/{deployment_id}/uninstall").get_data(as_text=True)
    assert 'id="confirm-uninstall"' in page and "cannot be undone" in page
    assert db.session.query(ServiceCommand).filter_by(phase="uninstall").count() == 0  # GET changes nothing
    response = client.post(f"/services/deployment/{deployment_id}/uninstall")
    removal = db.session.get(ServiceCommand, command_id_of(response))
    assert removal.phase == "uninstall"
    engine.execute(removal.id, worker="test")
    assert reload(db.session.get(ServiceDeployment, deployment_id)).status == Status.REMOVED
    assert client.get(f"/services/deployment/{deployment_id}/uninstall").status_code == 404
    assert f'data-deployment="{deployment_id}"' not in client.get("/services").get_data(as_text=True)


def test_someone_elses_deployment_and_command_are_404(client, login, worker_plan):
    owner = make_user()
    command = issue("worker", owner)
    login(make_user())
    for path in (
        f"/services/deployment/{command.deployment_id}",
        f"/services/deployment/{command.deployment_id}/uninstall",
        f"/commands/{command.id}",
    ):
        assert client.get(path).status_code == 404, path
    response = client.get(f"/commands/{command.id}/progress")
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert client.post(f"/commands/{command.id}/retry").status_code == 404
    assert client.get("/commands/99999999999999999999").status_code == 404


def test_progress_json_needs_a_login(client, app):
    response = client.get("/commands/1/progress")
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"


def test_secrets_in_params_are_masked_on_the_pages(client, user, worker_plan):
    command = issue("worker", user, params="size=1,api_token=s3cr3t-value")
    page = client.get(f"/services/deployment/{command.deployment_id}").get_data(as_text=True)
    assert "s3cr3t-value" not in page and "********" in page


SIGNUP_SPEC = """
- plan: signup
  offered: false
  steps:
    - task: app.ops.tasks.user_signup
      params: ""
"""


def commands_of(user) -> list[tuple]:
    db.session.expire_all()
    return [(c.id, c.phase, c.status) for c in db.session.query(ServiceCommand).filter_by(user_id=user.id)]


def test_internal_plans_are_not_listed_and_take_no_commands_from_users(client, user, app):
    make_plan()
    make_plan(spec=SIGNUP_SPEC)
    signup = issue("signup", user)  # what sign-up does: its step issues the omegaml install
    engine.execute(signup.id, worker="test")
    page = client.get("/services").get_data(as_text=True)
    assert 'data-plan="omegaml"' in page
    assert 'data-plan="signup"' not in page and "signup" not in page
    assert f'href="/commands/{signup.id}"' not in page

    deployment = reload(signup).deployment
    page = client.get(f"/services/deployment/{deployment.id}").get_data(as_text=True)
    assert 'id="update-form"' not in page and 'id="scale-form"' not in page and "/uninstall" not in page
    assert "run by omegaops itself" in page
    before = commands_of(user)
    for action in ("update", "scale", "uninstall"):
        response = client.post(f"/services/deployment/{deployment.id}/{action}", data={"params": "", "scale-p0": "1"})
        assert response.status_code == 404, action
        assert "run by omegaops itself" in response.get_data(as_text=True)
    assert client.get(f"/services/deployment/{deployment.id}/uninstall").status_code == 404
    assert commands_of(user) == before


def test_an_admin_still_commands_internal_deployments_from_the_page(client, login, app):
    make_plan()
    make_plan(spec=SIGNUP_SPEC)
    owner = make_user()
    signup = issue("signup", owner)
    engine.execute(signup.id, worker="test")
    login(make_user(admin=True))
    page = client.get(f"/services/deployment/{signup.deployment_id}").get_data(as_text=True)
    assert 'id="update-form"' in page and "/uninstall" in page


def test_a_one_per_user_plan_the_user_has_is_shown_installed_not_offered(client, user, worker_plan):
    make_plan()  # omegaml: one per user
    page = client.get("/services").get_data(as_text=True)
    assert 'data-install="omegaml"' in page
    command = issue("omegaml", user)
    page = client.get("/services").get_data(as_text=True)
    assert 'data-install="omegaml"' not in page and "Install omegaml" not in page
    assert 'data-installed="omegaml"' in page and f'href="/services/deployment/{command.deployment_id}"' in page
    assert 'data-install="worker"' in page  # not one per user: another can be installed

    # a hand-made POST gets the same answer, with nothing written
    before = commands_of(user)
    response = client.post("/services/omegaml/install", data={})
    assert response.status_code == 409 and "already have deployment" in response.get_data(as_text=True)
    assert commands_of(user) == before

    engine.execute(command.id, worker="test")
    removal = issue("omegaml", user, phase="uninstall")
    engine.execute(removal.id, worker="test")
    assert 'data-install="omegaml"' in client.get("/services").get_data(as_text=True)


def test_a_plan_without_configuration_is_not_offered_for_install(client, user, app):
    plan = make_plan()
    plan.current_configuration.active = False
    db.session.commit()
    page = client.get("/services").get_data(as_text=True)
    assert 'data-install="omegaml"' not in page and 'data-unavailable="omegaml"' in page
    response = client.post("/services/omegaml/install", data={})
    assert response.status_code == 400 and "no active configuration" in response.get_data(as_text=True)


def test_size_and_its_hint_show_only_where_the_plan_takes_a_size(client, user, app, scripts):
    # plans in the original format (no `parameters:`; test_parameters.py has the declared ones)
    make_plan(parameters="")  # omegaml: its spec names no size
    write_script("ok.sh", "echo sized $OMEGAOPS_PARAM_SIZE\n")
    # a plan whose step defaults size, and one whose step reports the size it runs (as worker.py does)
    make_script_plan("declared", "- script: ok.sh\n  params: size=1\n  phases: [install, update]\n", parameters="")
    write_script("report.sh", """echo '{"reported": {"size": 2, "running": 2}}' > "$OMEGAOPS_OUTPUT"\n""")
    make_script_plan("reported", "- script: report.sh\n  phases: [install, update]\n", parameters="")

    page = client.get("/services").get_data(as_text=True)
    card = {name: page[page.index(f'data-install="{name}"') :].split("</form>")[0] for name in ("omegaml", "declared")}
    assert "placeholder" not in card["omegaml"] and "size" not in card["omegaml"]
    assert 'placeholder="e.g. size=1"' in card["declared"]

    omegaml = issue("omegaml", user)
    engine.execute(omegaml.id, worker="test")
    page = client.get(f"/services/deployment/{omegaml.deployment_id}").get_data(as_text=True)
    assert 'id="update-form"' in page and 'id="scale-form"' not in page and "size" not in page
    assert "Update / scale" not in client.get("/services").get_data(as_text=True)
    before = commands_of(user)
    response = client.post(f"/services/deployment/{omegaml.deployment_id}/scale", data={"scale-p0": "2"})
    assert response.status_code == 400 and "takes no size" in response.get_data(as_text=True)
    assert commands_of(user) == before

    for name, size in (("declared", None), ("reported", "2")):
        command = issue(name, user)
        engine.execute(command.id, worker="test")
        page = client.get(f"/services/deployment/{command.deployment_id}").get_data(as_text=True)
        assert 'id="scale-form"' in page, name
        if size:  # the size the step reported is the form's value
            assert f'name="size" type="number" value="{size}"' in page or f'value="{size}"' in page
        response = client.post(f"/services/deployment/{command.deployment_id}/scale", data={"scale-p0": "3"})
        assert reload(db.session.get(ServiceCommand, command_id_of(response))).params == {"size": "3"}


def test_a_cancelled_install_reads_as_cancelled_not_failed(client, user, worker_plan):
    command = issue("worker", user)
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert 'id="cancel-form"' in page
    client.post(f"/commands/{command.id}/cancel")
    assert reload(command).failure_reason == FailureReason.CANCELLED
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert "This install was cancelled." in page and "failed" not in page
    # nothing was installed: no retry that would be refused, but the way to install it again
    assert 'id="retry-form"' not in page and 'id="install-again"' in page and 'id="cancel-form"' not in page
    assert "cancelled" in client.get("/services").get_data(as_text=True)


@pytest.mark.parametrize(
    "reason, headline",
    [
        (FailureReason.CANCELLED, "This update was cancelled."),
        (FailureReason.SCRIPT_ERROR, "This update failed: a step exited with an error."),
        (FailureReason.TIMEOUT, "This update failed: a step took longer than its timeout."),
        (FailureReason.WORKER_LOST, "This update failed: the worker running it stopped answering."),
        (FailureReason.SYSTEM_ERROR, "This update failed: omegaops could not run it."),
        (None, "This update failed."),
    ],
)
def test_each_failure_reason_reads_as_what_happened(client, user, worker_plan, reason, headline):
    install = issue("worker", user)
    engine.execute(install.id, worker="test")
    command = issue("worker", user, phase="update", deployment_id=install.deployment_id)
    command.status, command.failure_reason, command.finished_at = Status.FAILED, reason, utcnow()
    db.session.commit()
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert headline in page
    assert ("failed" in page) == (reason != FailureReason.CANCELLED)
    assert 'id="retry-form"' in page  # the deployment is there: a retry can succeed


def test_a_failed_internal_command_offers_users_no_retry(client, user, app):
    make_plan(spec=SIGNUP_SPEC)  # no omegaml plan: the signup step fails
    signup = issue("signup", user)
    engine.execute(signup.id, worker="test")
    assert reload(signup).status == Status.FAILED
    page = client.get(f"/commands/{signup.id}").get_data(as_text=True)
    assert "This install failed" in page and 'id="retry-form"' not in page
    before = commands_of(user)
    response = client.post(f"/commands/{signup.id}/retry", follow_redirects=True)
    assert "run by omegaops itself" in response.get_data(as_text=True)
    assert commands_of(user) == before


def test_destructive_forms_ask_for_confirmation(client, user, worker_plan):
    command = issue("worker", user)
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert re.search(r'<form [^>]*id="cancel-form"[^>]*data-confirm="Cancel this install of worker\?', page)
    engine.execute(command.id, worker="test")
    page = client.get(f"/services/deployment/{command.deployment_id}/uninstall").get_data(as_text=True)
    assert re.search(r'<form [^>]*data-confirm="Uninstall worker \(deployment \d+\)\? This cannot be undone.">', page)
    # the forms that change nothing for good carry none
    for path in (f"/services/deployment/{command.deployment_id}", "/services", f"/commands/{command.id}"):
        assert "data-confirm" not in client.get(path).get_data(as_text=True), path
