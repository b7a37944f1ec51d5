"""Journeys through the self-service pages and the console, against a real worker: a command followed live,
a worker installed and uninstalled, and an admin who finds a failed command, reads its log and retries it."""

import re
import uuid

from sqlalchemy import select

from app.extensions import db
from app.jobs.provisioning import enqueue_command
from app.models import ServiceCommand, ServiceTask, Status
from app.ops.commands import issue_command
from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

from ..factories import make_user
from ..processes import wait_until
from .conftest import SCREENSHOTS
from .helpers import expect, log_in, wait_for_deployment

LIVE = 20_000  # ms: how long a page may take to show what the worker did


def load_plan(app, name: str, task: str) -> None:
    """An offered plan whose one step is a python step of tests/steps.py."""
    text = f"""
- plan: {name}
  title: {name.capitalize()} test service
  offered: true
  one_per_user: false
  parameters:
    - {{name: flag, required: true, description: the file the step waits for}}
  steps:
    - task: tests.steps.{task}
      name: {task.replace("_", " ")}
"""
    apply_specs(parse_specs(text, "journey", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config)))
    db.session.commit()


def test_a_command_is_followed_live_until_it_completes(page, live_server, live_app):
    name = f"slow{uuid.uuid4().hex[:6]}"
    load_plan(live_app, name, "wait_for_flag")
    flag = live_server.dir / f"go-{name}"
    user = make_user()
    log_in(page, user.email)

    page.goto("/services")
    card = page.locator(f'form[data-install="{name}"]')
    card.get_by_label("flag", exact=True).fill(str(flag))
    card.get_by_role("button", name=f"Install {name}").click()
    expect(page).to_have_url(re.compile(r"/commands/\d+$"))
    # the worker has it: the page shows it running without being reloaded
    expect(page.locator("#command-status")).to_have_text("PENDING", timeout=LIVE)
    expect(page.locator('#steps [data-step="1"] .step-status')).to_have_text("PENDING")
    expect(page.locator("#progress-bar")).to_have_attribute("aria-valuenow", "0")

    flag.touch()
    expect(page.locator("#command-status")).to_have_text("COMPLETED", timeout=LIVE)
    expect(page.locator("#progress-bar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#completed")).to_be_visible()
    expect(page.locator("#log")).to_contain_text("go: done")


def test_a_user_installs_and_then_uninstalls_a_worker(page, live_app, console_errors):
    console_errors.allow(r"status of 400 .*/services/worker/install\)$")  # the refused size, on purpose
    user = make_user()
    log_in(page, user.email)

    page.get_by_role("navigation").get_by_role("link", name="Services").click()
    card = page.locator('form[data-install="worker"]')
    # the form is the plan's declaration: a field per parameter, its description, its bounds
    size = card.get_by_label("size", exact=True)
    expect(size).to_have_attribute("max", "16")
    expect(card.locator('[data-parameter="size"]')).to_contain_text("How many runtime workers run")
    size.fill("50")  # refused beside the field, before any command exists
    card.get_by_role("button", name="Install worker").click()
    card = page.locator('form[data-install="worker"]')
    expect(card.locator('[data-parameter="size"] .invalid-feedback')).to_contain_text(
        "params: size: must be a whole number from 0 to 16"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "install-form-refuses-size-50.png"), full_page=True)
    card.get_by_label("size", exact=True).fill("1")
    card.get_by_role("button", name="Install worker").click()
    expect(page.locator("#command-status")).to_have_text("COMPLETED", timeout=LIVE)
    page.get_by_role("link", name="Back to your services").click()

    row = page.locator('#deployments tr[data-plan="worker"]')
    expect(row.locator(".status-badge").first).to_have_text("COMPLETED")
    row.get_by_role("link", name="Uninstall").click()
    expect(page.get_by_role("heading", name=re.compile("Uninstall"))).to_be_visible()
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.locator("#confirm-uninstall").click()
    expect(page.locator("#command-status")).to_have_text("COMPLETED", timeout=LIVE)
    assert questions and questions[0].startswith("Uninstall worker (deployment ")
    page.get_by_role("link", name="Back to your services").click()
    expect(page.locator('#deployments tr[data-plan="worker"]')).to_have_count(0)
    expect(page.locator('form[data-install="worker"]')).to_be_visible()  # one per user: offered again


def test_without_javascript_the_uninstall_page_is_the_confirmation(browser, live_server, live_app):
    user = make_user()
    command = issue_command(plan="worker", user=user, phase="install", params="")
    db.session.commit()
    enqueue_command(command.id)
    wait_for_deployment(user.email, "worker")
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        log_in(page, user.email)
        page.goto(f"/services/deployment/{command.deployment_id}")
        page.get_by_role("link", name="Uninstall…").click()
        page.get_by_role("link", name="Keep it").click()  # declined: nothing is issued
        expect(page).to_have_url(re.compile(rf"/services/deployment/{command.deployment_id}$"))
        assert phases_of(command.deployment_id) == ["install"]
        page.get_by_role("link", name="Uninstall…").click()
        page.locator("#confirm-uninstall").click()  # no script to ask again: the page asked
        expect(page).to_have_url(re.compile(r"/commands/\d+$"))
        assert phases_of(command.deployment_id) == ["install", "uninstall"]
    finally:
        context.close()


def phases_of(deployment_id: int) -> list[str]:
    db.session.rollback()
    return list(
        db.session.scalars(
            select(ServiceCommand.phase)
            .where(ServiceCommand.deployment_id == deployment_id)
            .order_by(ServiceCommand.id)
        )
    )


def test_an_admin_finds_a_failed_command_reads_its_log_and_retries_it(page, live_server, live_app):
    name = f"flaky{uuid.uuid4().hex[:6]}"
    load_plan(live_app, name, "fail_unless_flag")
    flag = live_server.dir / f"fixed-{name}"
    owner = make_user()
    command = issue_command(plan=name, user=owner, phase="install", params=f"flag={flag}", privileged=True)
    db.session.commit()
    enqueue_command(command.id)

    def status():
        db.session.rollback()
        return db.session.scalar(select(ServiceCommand.status).where(ServiceCommand.id == command.id))

    wait_until(lambda: status() == Status.FAILED, 20, message=f"command {command.id} FAILED")

    admin = make_user(admin=True)
    log_in(page, admin.email)
    expect(page).to_have_url(re.compile(r"/admin/$"))  # an admin lands on the console
    page.locator("#failures").get_by_role("link", name=f"#{command.id}").click()
    expect(page.locator("#failure")).to_contain_text("RuntimeError: no space left on the disk")

    page.locator("#tasks").get_by_role("link", name=re.compile(r"log$")).click()
    log = page.locator("#task-log")
    expect(log).to_contain_text("checking the disk")
    expect(log).to_contain_text("no space left on the disk")
    expect(log).to_have_css("font-family", re.compile("monospace", re.I))

    page.go_back()
    flag.touch()  # the admin fixes the disk
    page.locator("#retry").click()
    expect(page.locator(".alert").filter(has_text=f"retries command {command.id}")).to_be_visible()
    page.get_by_role("link", name="Live progress").click()
    expect(page.locator("#command-status")).to_have_text("COMPLETED", timeout=LIVE)
    expect(page.locator("body")).to_contain_text(f"A retry of command {command.id}")


def test_an_admin_follows_a_running_tasks_log(page, live_server, live_app):
    name = f"slow{uuid.uuid4().hex[:6]}"
    load_plan(live_app, name, "wait_for_flag")
    flag = live_server.dir / f"go-{name}"
    command = issue_command(plan=name, user=make_user(), phase="install", params=f"flag={flag}", privileged=True)
    db.session.commit()
    enqueue_command(command.id)

    def task_id():
        db.session.rollback()
        return db.session.scalar(select(ServiceTask.id).where(ServiceTask.command_id == command.id))

    wait_until(lambda: task_id() is not None, 20, message=f"command {command.id} started")
    log_in(page, make_user(admin=True).email)
    page.goto(f"/admin/servicetask/details/?id={task_id()}")
    expect(page.locator("#task-status .status-badge")).to_have_text("PENDING")
    flag.touch()
    expect(page.locator("#task-status .status-badge")).to_have_text("COMPLETED", timeout=LIVE)
    expect(page.locator("#task-log")).to_contain_text("go: done")


def test_a_user_finds_usage_and_invoices_in_the_navigation(page, live_app):
    user = make_user()
    log_in(page, user.email)
    navigation = page.get_by_role("navigation")
    navigation.get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name=re.compile("^Usage"))).to_be_visible()
    navigation.get_by_role("link", name="Invoices").click()
    expect(page.locator("#preview")).to_contain_text("This month so far")
    expect(page.locator("#no-invoices")).to_be_visible()
