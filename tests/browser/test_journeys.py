"""Journeys through the pages in a real browser: sign-up to API key, and who gets the admin console."""

import re
import uuid

from ..factories import make_user
from ..processes import wait_until
from ..servers import link_in
from .helpers import expect, log_in, wait_for_deployment

PASSWORD = "analytical engine 1843"


def test_signup_confirm_login_and_create_an_api_key_shown_once(page, live_server, live_app):
    email = f"ada.{uuid.uuid4().hex[:8]}@example.com"

    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_label("I accept the terms of service").check()
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("alert")).to_contain_text(f"We sent a confirmation link to {email}")

    # not confirmed yet: the login is refused
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please confirm your email first")

    (mail,) = live_server.inbox.to(email)
    assert mail["Subject"] == "Confirm your email for omega|ml"
    link = link_in(mail, "/confirm/")
    assert link.startswith(f"{live_server.url}/confirm/")  # PUBLIC_URL
    page.goto(link)
    expect(page.get_by_role("alert")).to_contain_text("Your email is confirmed and your account is ready")

    log_in(page, email, PASSWORD)
    # confirming issued the sign-up command: the new user lands on their services, where the next steps are
    expect(page).to_have_url(re.compile(r"/services$"))
    start = page.locator("#getting-started")
    expect(start).to_contain_text("om cloud login")
    expect(start.locator("#start-key")).to_contain_text("Create an API key")

    # the omegaml deployment being prepared (or ready already): its command's page follows it live
    def deployment_shown() -> bool:
        page.reload()  # /services is not live: the sign-up step makes the deployment in a moment
        return start.locator("#start-deployment a").count() > 0

    wait_until(deployment_shown, 20, message="the omegaml deployment on /services")
    start.locator("#start-deployment a").click()
    expect(page).to_have_url(re.compile(r"/commands/\d+$"))
    expect(page.locator("#command-status")).to_have_text("COMPLETED", timeout=20_000)
    expect(page.locator("#completed")).to_be_visible()
    wait_for_deployment(email, "omegaml")
    page.get_by_role("link", name="Back to your services").click()
    expect(page.locator("#start-deployment")).to_contain_text("Your omega|ml service is ready")

    page.goto("/account")
    page.get_by_label("Key name").fill("laptop")
    page.get_by_role("button", name="Create a key").click()
    new_key = page.locator("#new-key")
    expect(new_key).to_have_text(re.compile(r"^[0-9a-f]{40}$"))
    key = new_key.inner_text()
    expect(page.locator("#login-line")).to_contain_text(key)

    # shown once: the next visit shows only its prefix
    page.goto("/account")
    expect(page.get_by_role("row", name=re.compile(r"^laptop"))).to_contain_text(f"{key[:8]}…")
    expect(page.locator("#new-key")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(key)


def test_a_user_who_is_not_an_admin_is_refused_the_console(page, live_app, console_errors):
    console_errors.allow(r"status of 403 .*/admin/\)$")
    user = make_user()
    log_in(page, user.email)
    expect(page.get_by_role("navigation").get_by_role("link", name="Console")).to_have_count(0)

    response = page.goto("/admin/")
    # refused, logged in, told why, and no console
    assert response.status == 403
    expect(page.get_by_role("heading", name=re.compile("403"))).to_be_visible()
    expect(page.get_by_text(f"{user.email} is not one")).to_be_visible()
    expect(page.get_by_role("navigation").get_by_text(user.email, exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="omegaops console")).to_have_count(0)


def test_an_admin_sees_the_console_dashboard(page, live_app):
    admin = make_user(admin=True)
    log_in(page, admin.email)

    # an admin lands on the console; the site and back again
    expect(page).to_have_url(re.compile(r"/admin/$"))
    page.locator("#console-to-site").click()
    page.get_by_role("navigation").get_by_role("link", name="Console").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="omegaops console")).to_be_visible()
    # the console's own menu (Flask-Admin), not the main site's
    expect(page.get_by_role("navigation").get_by_role("link", name="Users")).to_be_visible()
