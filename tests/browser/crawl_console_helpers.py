"""The console crawler: every Flask-Admin view the app registers, found at run time, exercised in the browser.

For a model view: its list page, each filter (Add Filter, the filter, its operation, a plausible value, Apply),
the search, a click on each sortable header, the details of the rows the seed names (or the first row), the
create form saved with valid values, the edit form saved unchanged and then with one text field changed (read
back from the database). For any other view: its page, its links and its forms.

Every POST form on a page it visits (and the list's "With selected" actions) is triggered: a destructive one
(it asks with ``data-confirm``, or its URL or label says it destroys) first with the confirmation declined,
which must change nothing in the database, then accepted; a destructive one that runs without asking is a
problem. Actions are accepted once per view and kind, on the rows the seed gave for it (the first page that
shows a kind not taken yet takes it), and only on seeded or crawler-made rows.

Problems are collected, not raised: each with the view, the step, the URL and a screenshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from flask import url_for
from flask_admin.model import BaseModelView
from flask_admin.model import filters as model_filters
from rq.registry import StartedJobRegistry
from sqlalchemy import String, Text, select
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.jobs.queues import ALL_QUEUES, get_queue, get_redis
from app.models import ServiceCommand
from app.models.status import IN_FLIGHT_STATES

from ..processes import ROOT, wait_until

if TYPE_CHECKING:
    from flask import Flask
    from playwright.sync_api import Page

    from .seed import Seed

SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots" / "crawl_console"
# No table changes on every console request: the API's request log is kept in Redis until drained
# (app/usage/requests.py), rate limits in the limiter's storage, API keys' last use only on API calls. A table
# that starts to (a request log in the database, sessions) goes here, with the reason.
EXCLUDED_TABLES: frozenset[str] = frozenset()
# what destroys or stops something, by its form's URL, button or hidden fields: it must ask first
DESTRUCTIVE = re.compile(
    r"delete|remove|uninstall|\bvoid\b|uncollectible|revoke|deactivate|take back|retire|cancel|/off\b", re.I
)
# inputs whose valid value cannot be guessed from the form (the deployment's update params, a scale size,
# a payment's amount in major units)
FORM_VALUES = {"params": "qualifier=default", "size": "1", "amount": "1.00"}
# values for create forms, by view endpoint and field, where a guess is not valid (none needed so far)
CREATE_VALUES: dict[str, dict[str, str]] = {}
MAX_DETAILS = 6  # seeded rows visited per view
MAX_LINKS = 25  # new links followed from one page
MAX_ACCEPTS = 10  # actions accepted on one page
TIMEOUT = 10_000  # ms for one browser step: a problem, not a stuck crawl
SETTLE = 60  # s the worker may take for what an accepted action issued

FORMS_JS = """() => Array.from(document.forms).map((f, index) => {
  const submits = Array.from(f.querySelectorAll('button[type=submit], button:not([type]), input[type=submit]'));
  const shown = submits.filter(b => b.getClientRects().length > 0);
  const button = shown[0] || submits[0];
  const hidden = {};
  f.querySelectorAll('input[type=hidden]').forEach(i => { if (i.name) hidden[i.name] = i.value; });
  return {
    index,
    method: (f.getAttribute('method') || 'get').toLowerCase(),
    action: f.action,
    confirm: f.dataset.confirm ?? (button && button.dataset.confirm) ?? null,
    label: button ? (button.innerText.trim() || button.value || button.title || '') : '',
    hidden,
    shown: shown.length > 0,
    model_form: f.classList.contains('admin-form'),
  };
})"""
SUBMIT = "button[type=submit], button:not([type]), input[type=submit]"


def filter_value(flt, options=None) -> str:
    """A value the filter accepts: an option of its list, else one of its type."""
    if options:
        return str(options[0][0])
    numeric = (model_filters.BaseIntFilter, model_filters.BaseIntListFilter)
    floats = (model_filters.BaseFloatFilter, model_filters.BaseFloatListFilter)
    value = {
        "datetimepicker": "2025-06-01 00:00:00",
        "datetimerangepicker": "2025-01-01 00:00:00 to 2027-12-31 23:59:59",
        "datepicker": "2025-12-05",
        "daterangepicker": "2025-01-01 to 2027-12-31",
        "timepicker": "12:00:00",
        "timerangepicker": "00:00:00 to 23:59:59",
    }.get(flt.data_type)
    if value is None:
        one = "1" if isinstance(flt, numeric) else "1.5" if isinstance(flt, floats) else "a"
        value = f"{one},2" if flt.data_type == "select2-tags" else one
    assert flt.validate(value), f"the crawler's value {value!r} is refused by {type(flt).__name__}"
    return value


def snapshot() -> dict[str, tuple[int, str]]:
    """Every table's row count and a hash of all its rows, and RQ's jobs; a fresh read (others write)."""
    db.session.rollback()
    state = {}
    try:
        for table in db.metadata.sorted_tables:
            if table.name in EXCLUDED_TABLES:
                continue
            rows = db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
            state[table.name] = (len(rows), hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest())
    finally:
        db.session.rollback()  # no read transaction left open
    jobs = sorted(get_redis().scan_iter("rq:job:*"))
    state["rq jobs"] = (len(jobs), hashlib.sha256(repr(jobs).encode()).hexdigest())
    return state


def changes(before: dict, after: dict) -> list[str]:
    """The tables (and RQ) whose rows differ, with their counts."""
    return [
        f"{name} ({before.get(name, (0,))[0]} -> {after.get(name, (0,))[0]} rows)"
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    ]


@dataclass
class Form:
    """A POST form as the page shows it."""

    index: int
    action: str  # path and query
    confirm: str | None
    label: str
    hidden: dict

    @property
    def kind(self) -> tuple:
        """What it does, whichever row it is for: its path without ids, its button, its fixed hidden fields."""
        fixed = tuple(sorted((k, v) for k, v in self.hidden.items() if k not in ("csrf_token", "id", "url", "force")))
        return (re.sub(r"\d+", "N", urlsplit(self.action).path), self.label, fixed)

    @property
    def destructive(self) -> bool:
        said = " ".join([urlsplit(self.action).path, self.label, *map(str, self.hidden.values())])
        return self.confirm is not None or bool(DESTRUCTIVE.search(said))

    @property
    def row(self) -> str | None:
        return self.hidden.get("id")

    def __str__(self):
        return f"POST {self.action} ({self.label or 'no label'})"


@dataclass
class Problem:
    view: str
    step: str
    url: str
    what: str
    screenshot: str = ""

    def __str__(self):
        shot = f"\n      screenshot: {self.screenshot}" if self.screenshot else ""
        return f"[{self.view}] {self.step}\n      at {self.url}\n      {self.what}{shot}"


@dataclass
class Crawl:
    counts: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    pages: set[str] = field(default_factory=set)
    not_accepted: list[str] = field(default_factory=list)  # destructive kinds declined but never accepted

    def summary(self) -> str:
        c = self.counts
        return (
            f"console crawl: {len(self.views)} views ({c['model views']} model views), {c['filters']} filters, "
            f"{c['searches']} searches, {c['sorts']} sorts, {c['details']} details pages, {c['creates']} creates, "
            f"{c['edits']} edits, {c['declined']} actions declined, {c['accepted']} actions accepted, "
            f"{c['bulk']} bulk actions, {c['links']} links followed, {c['documents']} page loads "
            f"({len(self.pages)} distinct pages), {len(self.problems)} problems"
        )


class ConsoleCrawler:
    """Drives one logged-in admin ``page`` over every view of ``app``'s admin; reads the database in the test's
    app context."""

    def __init__(self, page: Page, app: Flask, seed: Seed):
        self.page, self.app, self.seed = page, app, seed
        self.base = app.config["PUBLIC_URL"].rstrip("/")
        self.crawl = Crawl()
        self.tag = uuid.uuid4().hex[:6]
        self.serial = 0
        self.answer = "dismiss"  # what the dialog handler does: never accept what was not meant
        self.dialogs: list[str] = []
        self.documents: list[tuple[int, str]] = []
        self.console: list[str] = []
        self.accepted: dict[str, set] = {}
        self.visited: set[str] = set()
        self.covered: set[str] = set()  # pages the crawl opens on its own: links to them are not followed
        self.created: dict[type, list] = {}
        page.set_default_timeout(TIMEOUT)
        page.on("dialog", self._on_dialog)
        page.on("response", self._on_response)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console.append(f"uncaught exception on {page.url}: {error}"))

    # -- events

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        if self.answer == "accept":
            dialog.accept()
        else:
            dialog.dismiss()

    def _on_response(self, response) -> None:
        request = response.request
        if request.resource_type == "document" and request.frame == self.page.main_frame:
            self.documents.append((response.status, response.url))
            self.crawl.counts["documents"] += 1
            self.crawl.pages.add(self.local(response.url) or response.url)

    def _on_console(self, message) -> None:
        if message.type == "error":
            where = message.location.get("url", "") if message.location else ""
            self.console.append(f"console error on {self.page.url}: {message.text}" + (f" ({where})" if where else ""))

    # -- bookkeeping

    def unique(self) -> str:
        self.serial += 1
        return f"crawl-{self.tag}-{self.serial}"

    def local(self, href: str, current: str | None = None) -> str | None:
        """``href`` as path and query when it is on the live server, else None."""
        url = urlsplit(urljoin(current or self.page.url, href))
        if url.scheme not in ("http", "https") or f"{url.scheme}://{url.netloc}" != self.base:
            return None
        return url.path + (f"?{url.query}" if url.query else "")

    def problem(self, view: str, step: str, what: str) -> None:
        shot = ""
        n = len(self.crawl.problems) + 1
        with contextlib.suppress(Exception):  # the problem matters more than its picture
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            path = SCREENSHOTS / f"{n:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', f'{view} {step}')[:80].strip('-')}.png"
            self.page.screenshot(path=path, full_page=True)
            shot = str(path.relative_to(ROOT))
        self.crawl.problems.append(Problem(view, step, self.local(self.page.url) or self.page.url, what, shot))

    @contextlib.contextmanager
    def step(self, view: str, what: str):
        """One step of the crawl: its failure, its 5xx pages and its console errors are problems, and it goes on."""
        documents, console = len(self.documents), len(self.console)
        try:
            yield
        except AssertionError as exc:
            self.problem(view, what, str(exc) or "assertion failed")
        except Exception as exc:  # noqa: BLE001 -- a Playwright timeout or a crawler error: reported, crawl goes on
            self.problem(view, what, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        for status, url in self.documents[documents:]:
            if status >= 500:
                self.problem(view, what, f"{self.local(url) or url} answered {status}")
        for message in self.console[console:]:
            self.problem(view, what, message)

    def goto(self, path: str) -> None:
        response = self.page.goto(path)
        assert response is not None, f"GET {path}: no response"
        assert response.status < 500, f"GET {path}: {response.status}"
        self.visited.add(self.key(path))

    @staticmethod
    def key(path: str) -> str:
        """A page's identity for the crawl: its path and query without the return URL."""
        url = urlsplit(path)
        query = [(k, v) for k, v in parse_qsl(url.query) if k != "url"]
        return url.path + (f"?{urlencode(query)}" if query else "")

    def wait_settled(self) -> None:
        """Wait until what accepted actions issued is done: no command in flight (but the seed's), RQ idle."""

        def settled() -> bool:
            db.session.rollback()
            busy = db.session.scalar(
                select(ServiceCommand.id)
                .where(ServiceCommand.status.in_(IN_FLIGHT_STATES), ServiceCommand.id.not_in(self.seed.in_flight))
                .limit(1)
            )
            db.session.rollback()
            if busy is not None:
                return False
            return all(
                get_queue(name).count == 0 and StartedJobRegistry(queue=get_queue(name)).count == 0
                for name in ALL_QUEUES
            )

        wait_until(settled, SETTLE, message="the worker done with what the crawl issued")

    # -- the crawl

    def run(self) -> Crawl:
        views = [view for admin in self.app.extensions["admin"] for view in admin._views]
        with self.app.test_request_context():
            for view in views:
                if isinstance(view, BaseModelView):
                    self.covered.add(self.key(url_for(f"{view.endpoint}.index_view")))
        for view in views:
            self.crawl.views.append(view.name)
            if isinstance(view, BaseModelView):
                self.crawl.counts["model views"] += 1
                self.crawl_model_view(view)
            else:
                self.crawl_page_view(view)
        return self.crawl

    def url(self, endpoint: str, **values) -> str:
        with self.app.test_request_context():
            return url_for(endpoint, **values)

    # -- other views: their page, links and forms

    def crawl_page_view(self, view) -> None:
        index = self.url(f"{view.endpoint}.index")
        with self.step(view.name, "open"):
            self.goto(index)
        self.exercise_forms(view, index, trusted=True)
        self.follow_links(view, index, prefix="/")

    def follow_links(self, view, path: str, prefix: str, console: bool = True) -> None:
        """Open the page's links not visited yet: console pages in the browser, others checked by a request."""
        with self.step(view.name, f"links of {path}"):
            if self.key(self.local(self.page.url) or "") != self.key(path):
                self.goto(path)
            hrefs = self.page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
        links = []
        for href in hrefs:
            target = self.local(href, self.base + path)
            if target is None or href.startswith("#") or re.match(r"^/(logout)\b", target):
                continue
            key = self.key(target)
            if key in self.visited or key in self.covered or key in links or not target.startswith(prefix):
                continue
            if not console and target.startswith("/admin/"):
                continue
            links.append(key)
        for target in links[:MAX_LINKS]:
            self.visited.add(target)
            with self.step(view.name, f"link {target} (from {path})"):
                self.crawl.counts["links"] += 1
                # ask first: a download (a PDF, a YAML export) is checked without the browser opening it
                response = self.page.request.get(target, max_redirects=5)
                assert response.status < 500, f"GET {target}: {response.status}"
                self.crawl.pages.add(target)
                html = "text/html" in response.headers.get("content-type", "")
                if html and urlsplit(target).path.startswith("/admin/"):
                    self.goto(target)
                    self.exercise_forms(view, target, trusted=False, get_forms=True)

    # -- forms and actions

    def forms(self, get_forms: bool = False) -> list[Form]:
        """The page's POST forms a person can submit (not the model form, the logout, hidden ones)."""
        found = []
        for f in self.page.evaluate(FORMS_JS):
            action = self.local(f["action"]) if f["action"] else self.local(self.page.url)
            if action is None or action.startswith("/logout") or f["model_form"] or not f["shown"]:
                continue
            if f["method"] != "post" and not get_forms:
                continue
            found.append(Form(f["index"], action, f["confirm"], f["label"], f["hidden"]))
        return found

    def exercise_forms(self, view, path: str, trusted: bool, rows: set | None = None, get_forms=False) -> None:
        """Decline each destructive form on the page once, then accept the kinds this view has not taken yet.

        ``trusted``: the page is the seed's (or the crawler's), its actions may be accepted; else only the
        forms of ``rows`` (list pages: the disposable rows) are.
        """
        scope = self.accepted.setdefault(view.endpoint, set())
        with self.step(view.name, f"forms of {path}"):
            forms = self.forms(get_forms)
        done = set()
        for form in forms:
            if form.kind in done:
                continue
            done.add(form.kind)
            if not form.destructive:
                continue
            # on a list page, decline on a row that may go: if the decline does not hold, nothing of value is lost
            mine = [f for f in forms if f.kind == form.kind and rows and f.row in rows]
            self.decline(view, path, mine[0] if mine else form, scope)
        for _ in range(MAX_ACCEPTS):
            with self.step(view.name, f"forms of {path} (again)"):
                if self.key(self.local(self.page.url) or "") != self.key(path):
                    self.goto(path)
                if urlsplit(self.local(self.page.url) or "").path != urlsplit(path).path:
                    return  # the row is gone (deleted by the last action)
                candidates = [
                    f for f in self.forms(get_forms) if f.kind not in scope and (trusted or (rows and f.row in rows))
                ]
            if not candidates:
                break
            # what keeps the row first: a destructive action may end the state the others need
            form = sorted(candidates, key=lambda f: f.destructive)[0]
            scope.add(form.kind)
            self.accept(view, path, form)
            if rows and form.row in rows:
                rows.discard(form.row)
        for form in forms:
            if form.destructive and form.kind not in scope:
                scope.add(form.kind)  # said once per view
                self.crawl.not_accepted.append(f"{view.name}: {form} (no row of the seed's or the crawler's)")

    def locate(self, form: Form):
        """The form on the page as it is now (found again by what it does and for which row)."""
        for again in self.forms(get_forms=True):
            if again.kind == form.kind and again.row == form.row:
                return self.page.locator("form").nth(again.index)
        raise AssertionError(f"{form}: not on the page any more")

    def fill(self, element) -> None:
        """Fill the form's empty inputs a person would have to: by name where a guess is not valid, else by type."""
        for field_ in element.locator("input:not([type=hidden]):not([type=submit]), textarea").all():
            if not field_.is_visible() or field_.input_value():
                continue
            name = field_.get_attribute("name") or ""
            kind = (field_.get_attribute("type") or "text").lower()
            if name in FORM_VALUES:
                field_.fill(FORM_VALUES[name])
            elif kind == "number":
                field_.fill(field_.get_attribute("min") or "1")
            elif kind == "date":
                field_.fill(date.today().isoformat())
            elif (kind in ("text", "search") or field_.evaluate("e => e.tagName") == "TEXTAREA") and (
                field_.get_attribute("required") is not None or kind == "text"
            ):
                field_.fill(self.unique())

    def decline(self, view, path: str, form: Form, scope: set) -> None:
        with self.step(view.name, f"decline {form}"):
            self.wait_settled()
            if self.key(self.local(self.page.url) or "") != self.key(path):
                self.goto(path)
            element = self.locate(form)
            self.fill(element)
            before, asked, documents = snapshot(), len(self.dialogs), len(self.documents)
            self.answer = "dismiss"
            element.locator(SUBMIT).first.click()
            self.page.wait_for_timeout(300)  # time for a submission the dismissed dialog should have stopped
            self.page.wait_for_load_state()
            self.crawl.counts["declined"] += 1
            if len(self.dialogs) == asked:
                scope.add(form.kind)  # it ran: not again
                self.wait_settled()
                raise AssertionError(
                    f"{form}: destructive, and it ran without asking for a confirmation"
                    + (f" (it has data-confirm={form.confirm!r}: is confirm.js loaded?)" if form.confirm else "")
                    + f"; it changed: {', '.join(changes(before, snapshot())) or 'nothing in the database'}"
                )
            assert form.confirm is None or self.dialogs[-1] == form.confirm, (
                f"{form}: asked {self.dialogs[-1]!r}, its data-confirm says {form.confirm!r}"
            )
            assert len(self.documents) == documents, f"{form}: declined, and yet the page loaded {self.page.url}"
            changed = changes(before, snapshot())
            assert not changed, f"{form}: declined, and yet it changed {', '.join(changed)}"

    def accept(self, view, path: str, form: Form) -> None:
        with self.step(view.name, f"accept {form}"):
            self.wait_settled()
            element = self.locate(form)
            self.fill(element)
            asked = len(self.dialogs)
            self.answer = "accept"
            try:
                with self.page.expect_navigation() as navigation:
                    element.locator(SUBMIT).first.click()
            finally:
                self.answer = "dismiss"
            self.crawl.counts["accepted"] += 1
            response = navigation.value
            assert response is not None and response.status < 500, f"{form}: {response and response.status}"
            if form.destructive and len(self.dialogs) == asked:
                raise AssertionError(f"{form}: destructive, and it ran without asking for a confirmation")
            self.wait_settled()

    # -- model views

    def crawl_model_view(self, view) -> None:
        index = self.url(f"{view.endpoint}.index_view")
        with self.step(view.name, "open the list"):
            self.goto(index)
            assert self.page.locator("table.model-list").count() == 1, "no list table"
        self.crawl_filters(view, index)
        self.crawl_search(view, index)
        self.crawl_sorts(view, index)
        if view.can_create:
            self.crawl_create(view, index)
        if view.can_edit:
            self.crawl_edit(view, index)
        if view.can_view_details:
            self.crawl_details(view, index)
        self.crawl_list_actions(view, index)

    def crawl_filters(self, view, index: str) -> None:
        with self.step(view.name, "filter groups"):
            if self.key(self.local(self.page.url) or "") != self.key(index):
                self.goto(index)
            data = self.page.locator("#filter-groups-data")
            groups = json.loads(data.text_content()) if data.count() else {}
            expected = set(view._filter_groups or {})
            assert set(groups) == expected, (
                f"the page offers filters {sorted(groups)}, the view has {sorted(expected)}"
            )
        filters = view._filters or []
        for group, subfilters in groups.items():
            for n, sub in enumerate(subfilters):
                flt = filters[sub["index"]]
                with self.step(view.name, f"filter {group} {sub['operation']}"):
                    self.apply_filter(view, index, group, sub, flt, added=n == 0)

    def apply_filter(self, view, index: str, group: str, sub: dict, flt, added: bool) -> None:
        """The filter through the page: the group added from the menu (``added``), or, for its other operations,
        the operation switched on the row the page shows for the one applied before (one page load less)."""
        value = filter_value(flt, sub.get("options"))
        rows = self.page.locator("#filter_form table.filters tr")
        if added or urlsplit(self.page.url).path != urlsplit(index).path or rows.count() != 1:
            self.goto(index)
            self.page.locator(".nav-link.dropdown-toggle", has_text="Add Filter").click()
            self.page.locator(".field-filters a.filter", has_text=re.compile(rf"^\s*{re.escape(group)}\s*$")).click()
        row = rows.last
        operation = row.locator("select.filter-op")
        if operation.input_value() != sub["arg"]:
            operation.evaluate("(e, arg) => jQuery(e).val(arg).trigger('change')", sub["arg"])
        # select2 copies the select's classes onto its container: the select itself, or the input
        field_ = row.locator("select.filter-val, input.filter-val").first
        if field_.evaluate("e => e.tagName") == "SELECT" or field_.get_attribute("type") == "hidden":
            field_.evaluate("(e, v) => jQuery(e).val(v).trigger('change')", value)
        else:
            field_.fill(value)
            field_.press("Escape")  # close a date picker
        with self.page.expect_navigation() as navigation:
            self.page.locator("#filter_form button[type=submit]").click()
        self.crawl.counts["filters"] += 1
        response = navigation.value
        assert response.status < 500, f"{group} {sub['operation']} {value!r}: {response.status}"
        active = json.loads(self.page.locator("#active-filters-data").text_content())
        assert any(a[0] == sub["index"] for a in active), (
            f"{group} {sub['operation']} {value!r}: not among the page's active filters {active} ({self.page.url})"
        )

    def crawl_search(self, view, index: str) -> None:
        if not view._search_supported:
            return
        with self.step(view.name, "search"):
            self.goto(index)
            box = self.page.locator("form[role=search] input[name=search]")
            box.fill("a")
            with self.page.expect_navigation() as navigation:
                box.press("Enter")
            self.crawl.counts["searches"] += 1
            assert navigation.value.status < 500, f"search: {navigation.value.status}"
            assert "search=a" in self.page.url, f"the search was not sent: {self.page.url}"

    def crawl_sorts(self, view, index: str) -> None:
        expected = [name for column, name in view._list_columns if view.is_sortable(column)]
        with self.step(view.name, "sortable headers"):
            self.goto(index)
            headers = self.page.locator("table.model-list thead th.column-header > a[href*='sort=']")
            shown = [text.strip() for text in headers.all_inner_texts()]
            assert sorted(shown) == sorted(expected), f"sortable headers {shown}, the view sorts by {expected}"
        for name in shown:
            for order in ("ascending", "descending"):  # a second click on the sorted column reverses it
                with self.step(view.name, f"sort by {name} {order}"):
                    if order == "ascending":
                        self.goto(index)
                    link = self.page.locator("table.model-list thead th.column-header > a", has_text=name).first
                    with self.page.expect_navigation() as navigation:
                        link.click()
                    self.crawl.counts["sorts"] += 1
                    assert navigation.value.status < 500, f"sort by {name}: {navigation.value.status}"
                    assert "sort=" in self.page.url, f"not sorted: {self.page.url}"
                    assert ("desc=1" in self.page.url) == (order == "descending"), f"{order}? {self.page.url}"

    # the model form: create and edit

    def model_form(self):
        return self.page.locator("form.admin-form")

    def saved(self, view, action: str, message: str) -> None:
        """The form was saved: Flask-Admin's message; else what the page says is wrong."""
        if self.page.get_by_text(message).count():
            return
        errors = [
            t.strip() for t in self.page.locator(".invalid-feedback, .alert-danger, .alert-error").all_inner_texts()
        ]
        fields = (
            [f"{e.get_attribute('name')}: {e.input_value()!r}" for e in self.model_form().locator(".is-invalid").all()]
            if self.model_form().count()
            else []
        )
        raise AssertionError(
            f"{action} not saved: {'; '.join(errors) or 'no message'}"
            + (f" (fields marked invalid: {', '.join(fields)})" if fields else "")
        )

    def fill_create(self, view) -> dict[str, str]:
        """Fill the create form's required fields, by their type; returns what was filled."""
        values, overrides = {}, CREATE_VALUES.get(view.endpoint, {})
        for element in self.model_form().locator("[name]").all():
            name = element.get_attribute("name")
            tag = element.evaluate("e => e.tagName").lower()
            kind = (element.get_attribute("type") or "").lower()
            if name == "csrf_token" or kind in ("hidden", "submit", "file"):
                continue
            required = element.get_attribute("required") is not None
            if name in overrides:
                value = overrides[name]
            elif not required:
                continue
            elif tag == "select":
                value = element.evaluate("e => Array.from(e.options).map(o => o.value).find(v => v && v !== '__None')")
                assert value is not None, f"{name}: a required select without an option"
            elif kind == "checkbox":
                element.check()
                values[name] = "on"
                continue
            elif kind == "number":
                value = element.get_attribute("min") or "1"
            elif element.get_attribute("data-role") == "datepicker":
                value = "2025-12-01"
            elif element.get_attribute("data-role") == "datetimepicker":
                value = "2025-12-01 10:00:00"
            elif "email" in name or kind == "email":
                value = f"{self.unique()}@example.com"
            else:
                value = self.unique()
                limit = element.get_attribute("maxlength")
                value = value[-int(limit) :] if limit else value
            if tag == "select":
                element.evaluate("(e, v) => jQuery(e).val(v).trigger('change')", value)
            else:
                element.fill(value)
            values[name] = value
        return values

    def crawl_create(self, view, index: str) -> None:
        with self.step(view.name, "create"):
            self.goto(index)
            link = self.page.locator(".nav-tabs a.nav-link", has_text="Create")
            with self.page.expect_navigation():
                link.click()
            model = view.model
            before = self.pks(model)
            values = self.fill_create(view)
            with self.page.expect_navigation() as navigation:
                self.model_form().locator("input[type=submit], button[type=submit]").first.click()
            assert navigation.value.status < 500, f"create: {navigation.value.status}"
            self.crawl.counts["creates"] += 1
            self.saved(view, f"create with {values}", "Record was successfully created.")
            new = self.pks(model) - before
            assert len(new) == 1, f"create with {values}: {len(new)} new rows in {model.__tablename__}"
            self.created.setdefault(model, []).extend(new)

    def pks(self, model) -> set:
        db.session.rollback()
        (key,) = sa_inspect(model).primary_key
        found = set(db.session.scalars(select(key)).all())
        db.session.rollback()
        return found

    def first_row(self, index: str) -> str | None:
        """The id of the list's first row (from its details or edit link)."""
        self.goto(index)
        link = self.page.locator("table.model-list td.list-buttons-column a[href*='id=']").first
        if not link.count():
            return None
        return dict(parse_qsl(urlsplit(link.get_attribute("href")).query)).get("id")

    def editable_text(self, view):
        """The first plain text input of the edit form whose column takes any text (not unique, not a date)."""
        table = view.model.__table__
        unique = {c.name for c in table.columns if c.unique or c.primary_key}
        for constraint in table.constraints:
            if len(getattr(constraint, "columns", ())) and type(constraint).__name__ == "UniqueConstraint":
                unique |= {c.name for c in constraint.columns}
        for element in self.model_form().locator("input[type=text]").all():
            name = element.get_attribute("name")
            column = table.columns.get(name)
            if (
                column is None
                or name in unique
                or not isinstance(column.type, String | Text)
                or element.get_attribute("readonly") is not None
                or element.get_attribute("data-role")
            ):
                continue
            return name, element
        return None, None

    def crawl_edit(self, view, index: str) -> None:
        model = view.model
        subjects = self.seed.subjects.get(model) or self.created.get(model) or []
        pk = subjects[0] if subjects else None
        with self.step(view.name, "edit: the row"):
            if pk is None:
                pk = self.first_row(index)
            assert pk is not None, "no row to edit"
        if pk is None:
            return
        edit = self.url(f"{view.endpoint}.edit_view", id=pk, url=index)
        with self.step(view.name, f"edit {pk}: save unchanged"):
            self.goto(edit)
            with self.page.expect_navigation() as navigation:
                self.model_form().locator("input[type=submit], button[type=submit]").first.click()
            assert navigation.value.status < 500, f"save: {navigation.value.status}"
            self.crawl.counts["edits"] += 1
            self.saved(view, f"the unchanged edit form of {model.__name__} {pk}", "Record was successfully saved.")
        with self.step(view.name, f"edit {pk}: change one text field"):
            self.goto(edit)
            name, element = self.editable_text(view)
            assert name is not None, "no plain text field to change"
            value = f"Crawled {self.unique()}"
            limit = element.get_attribute("maxlength")
            value = value[-int(limit) :] if limit else value
            element.fill(value)
            with self.page.expect_navigation() as navigation:
                self.model_form().locator("input[type=submit], button[type=submit]").first.click()
            assert navigation.value.status < 500, f"save: {navigation.value.status}"
            self.crawl.counts["edits"] += 1
            self.saved(
                view, f"the edit form of {model.__name__} {pk} with {name}={value!r}", "Record was successfully saved."
            )
            db.session.rollback()
            stored = getattr(db.session.get(model, int(pk) if str(pk).isdigit() else pk), name)
            db.session.rollback()
            assert stored == value, f"{model.__name__} {pk}: {name} saved as {value!r}, the database has {stored!r}"

    # details and list actions

    def crawl_details(self, view, index: str) -> None:
        rows = list(self.seed.subjects.get(view.model, []))[:MAX_DETAILS]
        trusted = bool(rows)
        if not rows:
            with self.step(view.name, "details: the first row"):
                first = self.first_row(index)
                assert first is not None, "no row to see"
                rows = [first]
        for pk in rows:
            details = self.url(f"{view.endpoint}.details_view", id=pk)
            with self.step(view.name, f"details {pk}"):
                self.goto(details)
                self.crawl.counts["details"] += 1
                assert self.page.locator("table").count(), "no details table"
            self.exercise_forms(view, details, trusted=trusted)
            self.follow_links(view, details, prefix=view.url + "/")
            # the site's pages it links (a PDF, the user's page of a deployment)
            self.follow_links(view, details, prefix="/", console=False)

    def crawl_list_actions(self, view, index: str) -> None:
        """The list's row forms (delete) and its "With selected" actions, on rows that may go."""
        rows = {str(pk) for pk in [*self.seed.disposable.get(view.model, []), *self.created.get(view.model, [])]}
        with self.step(view.name, "the list's forms"):
            self.goto(index)
        self.exercise_forms(view, index, trusted=False, rows=rows)
        with self.step(view.name, "the list's bulk actions"):
            self.goto(index)
            names = self.page.locator("[data-model-action]").evaluate_all(
                "items => items.map(i => [i.dataset.modelAction, i.innerText.trim()])"
            )
        for name, label in names:
            target = sorted(rows)[0] if rows else None
            with self.step(view.name, f"with selected: {label} (decline)"):
                self.bulk(view, index, name, label, target, accept=False)
            if target is None:
                self.crawl.not_accepted.append(f"{view.name}: with selected {label} (no row that may go)")
                continue
            with self.step(view.name, f"with selected: {label} (accept)"):
                self.bulk(view, index, name, label, target, accept=True)
                rows.discard(target)

    def bulk(self, view, index: str, name: str, label: str, target: str | None, accept: bool) -> None:
        self.wait_settled()
        self.goto(index)
        boxes = self.page.locator("input.action-checkbox")
        box = self.page.locator(f"input.action-checkbox[value={json.dumps(target)}]") if target else boxes.first
        assert box.count(), f"no row {target} to select on the list"
        box.first.check()
        before, asked, documents = snapshot(), len(self.dialogs), len(self.documents)
        self.page.locator(".nav-link.dropdown-toggle", has_text="With selected").click()
        item = self.page.locator(f"[data-model-action={json.dumps(name)}]")
        self.crawl.counts["bulk"] += 1
        if not accept:
            item.click()
            self.page.wait_for_timeout(300)
            self.page.wait_for_load_state()
            if len(self.dialogs) == asked:
                raise AssertionError(
                    f"with selected {label}: ran without asking; it changed: "
                    f"{', '.join(changes(before, snapshot())) or 'nothing in the database'}"
                )
            assert len(self.documents) == documents, f"with selected {label}: declined, and yet {self.page.url} loaded"
            changed = changes(before, snapshot())
            assert not changed, f"with selected {label}: declined, and yet it changed {', '.join(changed)}"
            self.crawl.counts["declined"] += 1
            return
        self.answer = "accept"
        try:
            with self.page.expect_navigation() as navigation:
                item.click()
        finally:
            self.answer = "dismiss"
        self.crawl.counts["accepted"] += 1
        assert navigation.value.status < 500, f"with selected {label}: {navigation.value.status}"
        assert len(self.dialogs) > asked, f"with selected {label}: ran without asking"
