"""Browser fixtures: the real app over HTTP, a real worker and SMTP server, driven by Debian's Chromium (Playwright).

- ``live_server`` (package): the app on a SQLite file, served from a thread on a free loopback port, with the
  shipped services loaded, confirmation mails required and sent to a local SMTP server, and a ``flask worker``
  process on the same database and the test Redis. Tests share it: make your own users (``live_app`` + factories).
- ``live_app`` (function): an app context of that app, for factories and database checks in the test itself.
- ``browser`` (session) and ``page`` (function, a fresh context whose ``base_url`` is the live server).
- Every test with a ``page`` fails on browser console errors (JS errors, CSP violations, failed loads) unless it
  allows them (``console_errors.allow(...)``); a failed test leaves a full-page screenshot in
  tests/artifacts/screenshots/<test name>.png.

Playwright's own browser download cannot run here: the browser is Debian's ``chromium`` package, which
``scripts/setup.sh test`` installs. Without it the tests fail under CI and are skipped elsewhere.
"""

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis

from app.extensions import db

from ..conftest import make_app
from ..processes import ROOT, Process, load_shipped_services
from ..servers import Inbox, SmtpServer, serve_http

CHROMIUM = Path("/usr/bin/chromium")
# without the background-networking flags Chromium keeps calling home, and this machine has no network
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
# journeys log in and sign up far more often than a person could: the limits are tested elsewhere
GENEROUS = "1000 per minute"


@dataclass
class LiveServer:
    url: str
    app: Flask
    inbox: Inbox
    worker: Process
    dir: Path


@pytest.fixture(scope="package")
def smtp_server():
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture(scope="package")
def live_server(redis_server, smtp_server, tmp_path_factory):
    """The app over HTTP with the shipped services, SMTP mail and a real worker; shared by the browser tests."""
    tmp = tmp_path_factory.mktemp("live")
    connection = Redis.from_url(redis_server.url)
    connection.flushall()
    connection.close()
    app = make_app(
        f"sqlite:///{tmp / 'omegaops.db'}",
        redis_server.url,
        tmp,
        WTF_CSRF_ENABLED=True,  # a browser posts the forms' real tokens
        SIGNUP_CONFIRMATION=True,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_server.port,
        LOGIN_RATE_LIMIT=GENEROUS,
        SIGNUP_RATE_LIMIT=GENEROUS,
        RESET_RATE_LIMIT=GENEROUS,
    )
    with app.app_context():
        db.create_all()
        load_shipped_services(app)
    with serve_http(app) as url:
        app.config["PUBLIC_URL"] = url
        worker = Process(
            app,
            "worker",
            log=tmp / "worker.log",
            OMEGAOPS_STATE_DIR=tmp / "state",
            OMEGAOPS_PUBLIC_URL=url,
            OMEGAOPS_MAIL_SERVER="127.0.0.1",
            OMEGAOPS_MAIL_PORT=smtp_server.port,
        )
        try:
            yield LiveServer(url=url, app=app, inbox=smtp_server.inbox, worker=worker, dir=tmp)
        finally:
            worker.stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def live_app(live_server):
    """An app context of the live server's app, for factories and database checks."""
    with live_server.app.app_context():
        yield live_server.app
        db.session.remove()


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium package (`scripts/setup.sh test` does)"
    try:
        import playwright.sync_api  # noqa: F401 -- only whether it imports
    except ImportError:
        return "playwright is not installed: `.venv/bin/pip install -e '.[dev]'` (`scripts/setup.sh test` does)"
    return None


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, through Playwright's sync API; fails under CI when it cannot start."""
    problem = browser_problem()
    if problem:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"browser tests cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()


@dataclass
class ConsoleErrors:
    """The browser console's errors (JS errors, CSP violations, failed loads) and uncaught exceptions of a test."""

    messages: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Accept errors matching ``pattern`` (a regex) in this test, e.g. the 400 of a refused link."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            self.messages.append(f"console error: {message.text}" + (f" ({where})" if where else ""))

    def on_web_error(self, web_error) -> None:
        self.messages.append(f"uncaught exception: {web_error.error}")

    def unexpected(self) -> list[str]:
        return [text for text in self.messages if not any(pattern.search(text) for pattern in self.allowed)]


@pytest.fixture
def console_errors():
    return ConsoleErrors()


@pytest.fixture
def page(browser, live_server, console_errors):
    """A page in a fresh browser context (no cookies) whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url)
    context.on("console", console_errors.on_console)
    context.on("weberror", console_errors.on_web_error)
    page = context.new_page()
    yield page
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail a test that passed but left errors in the browser console."""
    result = yield
    console = item.funcargs.get("console_errors")
    page = item.funcargs.get("page")
    if console is not None and page is not None:
        from playwright.sync_api import Error as PlaywrightError

        # a round trip, so the browser's last console events reach us (a page mid-navigation may refuse it)
        with contextlib.suppress(PlaywrightError):
            page.evaluate("0")
        if unexpected := console.unexpected():
            pytest.fail("errors in the browser console:\n  " + "\n  ".join(unexpected), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test: a full-page screenshot, and the console errors and worker log in the report."""
    report = yield
    if report.when == "call" and report.failed:
        page = item.funcargs.get("page")
        if page is not None and not page.is_closed():
            path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=path, full_page=True)
                report.sections.append(("screenshot", f"{path} (of {page.url})"))
            except Exception as exc:  # the report must keep the test's own failure
                report.sections.append(("screenshot", f"none: {exc}"))
        console = item.funcargs.get("console_errors")
        if console is not None and console.messages:
            report.sections.append(("browser console", "\n".join(console.messages)))
        live_server = item.funcargs.get("live_server")
        if live_server is not None and (log := live_server.worker.output()):
            report.sections.append(("worker log (end)", log[-4000:]))
    return report
