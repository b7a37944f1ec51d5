"""A crawler of the user's pages: every same-origin link breadth-first, every form submitted or declined.

Links must answer below 400 and render without console errors (the ``page`` fixture fails the test on
those). Forms are submitted with what the page filled in; a destructive one (``data-confirm``) has its
confirmation dismissed, and must then change nothing in the database. Between two steps the crawler
waits until the user's commands are done, so every page shows a settled state.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, ServiceCommand, ServiceDeployment
from app.models.status import IN_FLIGHT_STATES

from ..processes import ROOT, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import ConsoleErrors

CONFIRM_JS = ROOT / "app" / "static" / "js" / "confirm.js"
SKIPPED = re.compile(r"^/(logout|admin)(/|$)")
# actions that destroy or stop something: their forms must ask first (data-confirm)
DESTRUCTIVE = re.compile(r"/(uninstall|revoke|delete|cancel|remove)(/|$)")
MAX_PAGES = 150
# endless links (the usage page's previous / next month): a few query strings per path are enough
MAX_VARIANTS = 3
MAX_FORMS = 60
SETTLE = 60  # seconds the worker may take to finish what a submitted form issued


def user_state(user_id: int) -> dict:
    """What a declined confirmation must leave as it was: the user's commands, deployments and API keys."""
    db.session.rollback()  # a fresh read: the app and the worker write from elsewhere
    return {
        "commands": sorted(
            db.session.execute(
                select(ServiceCommand.id, ServiceCommand.phase, ServiceCommand.status).where(
                    ServiceCommand.user_id == user_id
                )
            ).all()
        ),
        "deployments": sorted(
            db.session.execute(
                select(ServiceDeployment.id, ServiceDeployment.status).where(ServiceDeployment.user_id == user_id)
            ).all()
        ),
        "keys": sorted(
            db.session.execute(select(ApiKey.id, ApiKey.revoked_at.is_(None)).where(ApiKey.user_id == user_id)).all()
        ),
    }


def wait_settled(user_id: int, timeout: float = SETTLE) -> None:
    """Wait until none of the user's commands is queued or running."""

    def settled():
        db.session.rollback()
        return (
            db.session.scalar(
                select(ServiceCommand.id)
                .where(ServiceCommand.user_id == user_id, ServiceCommand.status.in_(IN_FLIGHT_STATES))
                .limit(1)
            )
            is None
        )

    wait_until(settled, timeout, message=f"the commands of user {user_id} done")


@dataclass
class FormSeen:
    url: str  # the page it is on
    index: int  # its position among the page's forms
    action: str  # path and query
    confirm: str | None  # its data-confirm question

    @property
    def key(self) -> tuple:
        return (self.action, self.confirm is not None)


@dataclass
class Crawl:
    """What one crawl found and did."""

    pages: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)  # destructive forms without data-confirm: not submitted
    without_script: list[str] = field(default_factory=list)  # data-confirm forms on a page without confirm.js

    def summary(self) -> str:
        return (
            f"crawled {len(self.pages)} pages, submitted {len(self.submitted)} forms, "
            f"declined {len(self.declined)} confirmations"
            + (f", {len(self.unconfirmed)} destructive forms without data-confirm" if self.unconfirmed else "")
            + (f", {len(self.without_script)} data-confirm forms without confirm.js" if self.without_script else "")
            + "".join(
                f"\n  {title}: {' '.join(items)}"
                for title, items in (
                    ("pages", self.pages),
                    ("submitted", self.submitted),
                    ("declined", self.declined),
                    ("not submitted, no data-confirm", self.unconfirmed),
                )
                if items
            )
        )


class Crawler:
    """Breadth-first over the same-origin links from ``start``, as the logged-in user of ``page``."""

    def __init__(self, page: Page, base_url: str, user_id: int, console: ConsoleErrors):
        self.page, self.base, self.user_id, self.console = page, base_url.rstrip("/"), user_id, console
        self.crawl = Crawl()
        self.queue: deque[str] = deque()
        self.seen: set[str] = set()
        self.variants: dict[str, int] = {}
        self.forms: set[tuple] = set()
        self.dialogs: list[str] = []
        page.on("dialog", self._dismiss)

    def _dismiss(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def local(self, href: str, current: str) -> str | None:
        """``href`` as a path and query when it is a same-origin page the crawl should visit, else None."""
        url = urlsplit(urljoin(current, href))
        if url.scheme not in ("http", "https") or f"{url.scheme}://{url.netloc}" != self.base:
            return None
        if SKIPPED.match(url.path):
            return None
        return url.path + (f"?{url.query}" if url.query else "")

    def enqueue(self, path: str | None) -> None:
        if path is None or path in self.seen:
            return
        bare = urlsplit(path).path
        if bare != path:
            if self.variants.get(bare, 0) >= MAX_VARIANTS:
                return
            self.variants[bare] = self.variants.get(bare, 0) + 1
        self.seen.add(path)
        self.queue.append(path)

    def run(self, start: str) -> Crawl:
        self.enqueue(start)
        while self.queue:
            assert len(self.crawl.pages) < MAX_PAGES, f"more than {MAX_PAGES} pages: {self.crawl.pages[-10:]}"
            self.visit(self.queue.popleft())
        return self.crawl

    def visit(self, path: str) -> None:
        wait_settled(self.user_id)
        before = user_state(self.user_id)
        # ask first: a link to a download (a PDF) is checked without the browser opening it
        response = self.page.request.get(path, max_redirects=5)
        assert response.status < 400, f"GET {path}: {response.status}"
        self.crawl.pages.append(path)
        if "text/html" not in response.headers.get("content-type", ""):
            return
        answer = self.page.goto(path)
        assert answer is not None and answer.status < 400, f"GET {path} in the browser: {answer and answer.status}"
        assert user_state(self.user_id) == before, f"GET {path} changed the database"
        url = self.page.url
        for href in self.page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            self.enqueue(self.local(href, url))
        for form in self.forms_on(url):
            if form.key not in self.forms:
                self.forms.add(form.key)
                self.submit(form)

    def forms_on(self, url: str) -> list[FormSeen]:
        found = self.page.eval_on_selector_all(
            "form",
            """forms => forms.map(f => ({
                action: f.getAttribute('action') || '',
                method: (f.getAttribute('method') || 'get').toLowerCase(),
                confirm: f.dataset.confirm ?? f.querySelector('[type=submit][data-confirm]')?.dataset.confirm ?? null,
                disabled: !f.querySelector('button[type=submit]:not([disabled]), input[type=submit]:not([disabled])'),
            }))""",
        )
        forms = []
        for index, form in enumerate(found):
            action = self.local(form["action"] or url, url)
            if action is None or form["disabled"]:
                continue  # the logout form, the console's
            forms.append(FormSeen(url, index, action, form["confirm"]))
        return forms

    def submit(self, form: FormSeen) -> None:
        assert len(self.crawl.submitted) + len(self.crawl.declined) < MAX_FORMS, "too many forms"
        if form.confirm is None and DESTRUCTIVE.search(urlsplit(form.action).path):
            self.crawl.unconfirmed.append(form.action)
            return
        if form.confirm is not None and not self.has_confirm_script():
            self.crawl.without_script.append(form.action)  # submitting would destroy without asking
            return
        wait_settled(self.user_id)
        self.page.goto(form.url)
        # the page as it is now: find the form again by what it does
        again = [f for f in self.forms_on(self.page.url) if f.key == form.key]
        if not again:
            return  # gone since (the command it stopped has finished)
        button = self.page.locator("form").nth(again[0].index).locator("button[type=submit], input[type=submit]")
        button = button.first
        if form.confirm is not None:
            before, asked = user_state(self.user_id), len(self.dialogs)
            button.click()
            self.page.wait_for_timeout(300)  # time for a submission the dismissed dialog should have stopped
            assert len(self.dialogs) == asked + 1, f"{form.action}: no confirmation was asked"
            assert self.dialogs[-1] == form.confirm, f"{form.action}: asked {self.dialogs[-1]!r}"
            assert self.page.url.endswith(urlsplit(form.url).path), f"{form.action}: left for {self.page.url}"
            wait_settled(self.user_id)
            assert user_state(self.user_id) == before, f"{form.action}: a declined confirmation changed the database"
            self.crawl.declined.append(form.action)
            return
        # a form refused with a 4xx page (an empty password form) is fine: the console says so, allow that
        self.console.allow(rf"status of 4\d\d .*\({re.escape(self.base + urlsplit(form.action).path)}\)$")
        with self.page.expect_navigation() as navigation:
            button.click()
        answer = navigation.value
        assert answer is not None and answer.status < 500, f"POST {form.action}: {answer and answer.status}"
        self.crawl.submitted.append(form.action)
        landed = self.local(self.page.url, self.page.url)
        if landed is not None and urlsplit(landed).path != urlsplit(form.action).path:
            self.enqueue(landed)  # where it redirected: a new command's page, for one

    def actions_seen(self) -> set[str]:
        """The actions of every form the crawl found."""
        return {action for action, _ in self.forms}

    def has_confirm_script(self) -> bool:
        return self.page.locator('script[src$="/js/confirm.js"]').count() > 0
