"""A fuzz pass over the pages and the console: no junk in a URL, a query or a form may get a 5xx.

Every GET route of ``app.url_map`` (the pages, the console, the API routes schemathesis does not cover) is
requested as an anonymous visitor, a user and an admin: once with valid values for its URL variables, then
with each variable replaced by junk (ids beyond any column, non-digits, NUL, unicode, 10,000 characters), then
with junk in each query parameter the views read (found in the source) and in Flask-Admin's (page, sort, flt...).
Then every form route (POST) gets every field name seen on the pages, filled with junk (NUL, control characters,
overlong text), as each role. The routes and field names are found at run time: a new route or form is fuzzed
the day it is added. All failures are collected and listed; the counts are printed (``-s`` shows them).

The database holds a row of every kind the pages show (a completed install with its task, an invoice, usage), so
a details page with a valid id renders its real content. CSRF is off (TestConfig), so a form's validation is
reached; rate limits are lifted for the fuzz's logins.
"""

import logging
import re
import traceback
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from app import accounts
from app.extensions import db
from app.models import ApiKey, Metric, PeriodicRun, UsageDaily
from app.models.types import utcnow

from .conftest import make_app
from .factories import PASSWORD, make_plan, make_user

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("anonymous", "user", "admin")
SKIPPED_ENDPOINTS = {"static", "admin.static"}
SCHEMATHESIS = "/admin/api/v2/service/"  # fuzzed from its OpenAPI document (tests/test_openapi.py)
JSON_API = ("/api/", "/admin/api/", "/billing/webhooks/")  # POST bodies are JSON: tests/test_bad_input.py

# ids beyond the INTEGER columns and beyond 64 bits, negative, non-digits, NUL, a header injection, unicode
# (right-to-left override, astral), an invalid UTF-8 escape, overlong
JUNK = (str(2**31), str(2**63), str(10**30), "-1", "abc", "\x00", "/a\r\nX: y", "ü✓\u202e𝔘", "%FF%FE", "x" * 10_000)
SINGLE_JUNK = (str(2**63), "\x00", "x" * 10_000)  # each query key alone: beyond 64 bits, NUL, overlong
FORM_JUNK = ("a\x00b", "\x01\x1b[31m\x7f", "line\r\nbreak\t", "ü✓\u202e𝔘" + "9" * 40, "x" * 10_000)
# Flask-Admin's list and details arguments; plus what the views read (found below)
QUERY_KEYS = {"page", "page_size", "id", "sort", "desc", "flt0_0", "flt1_1", "search", "q", "url"}
ARG_NAMES = re.compile(r"""(?:request\.args\.get(?:list)?\(|request\.args\[|single_arg\(|int_arg\()\s*["'](\w+)["']""")


def query_keys() -> list[str]:
    found = set(QUERY_KEYS)
    for path in (ROOT / "app").rglob("*.py"):
        found.update(ARG_NAMES.findall(path.read_text(encoding="utf-8")))
    return sorted(found)


@dataclass
class World:
    emails: dict  # role -> the email of its user (who logs in with PASSWORD)
    values: dict  # URL variable -> a valid value
    victim_id: int  # the user the console's POST actions are taken on
    requests: Counter = field(default_factory=Counter)
    routes: set = field(default_factory=set)
    failures: list = field(default_factory=list)
    field_names: set = field(default_factory=set)


def build_world() -> World:
    """A row of every kind the pages show: users, a completed install (deployment, command, task), metrics and
    usage, an open invoice, a periodic run."""
    from app.billing.invoices import finalize, write_draft
    from app.usage.events import record

    from .browser.seed import FINALIZED, SINCE, _install

    user = make_user(email="ada@example.com", userid="ada", company="Lovelace Ltd", country="CH")
    admin = make_user(email="root@example.com", userid="root", admin=True)
    victim = make_user(email="victim@example.com", userid="victim")
    for owner in (user, victim):
        accounts.create_api_key(owner, "fuzz")
    plan = make_plan("fuzz", title="Fuzz plan", one_per_user=False)
    plan.base_fee = 1990
    metric = Metric(plan=plan, name="requests", kind="api", action="request", unit="req", unit_price="0.5")
    db.session.add(metric)
    db.session.commit()
    command = _install(plan.name, user, since=SINCE)
    db.session.add(UsageDaily(user_id=user.id, plan_id=plan.id, metric_id=metric.id, day="2025-10-12", value=400))
    db.session.add(PeriodicRun(job="app.usage.rollup.rollup", outcome=PeriodicRun.OK, detail="", finished_at=utcnow()))
    now = utcnow().isoformat()
    record([{"id": "fuzz-1", "start_dt": now, "user": user.userid, "kind": "api", "action": "request"}], "batch")
    db.session.commit()
    invoice = write_draft(user, "2025-10")
    db.session.commit()
    finalize(invoice, FINALIZED)
    db.session.commit()
    key = db.session.scalar(db.select(ApiKey).where(ApiKey.user_id == user.id))
    values = {
        "user_id": user.id,
        "key_id": key.id,
        "plan_id": plan.id,
        "plan_name": plan.name,
        "configuration_id": command.configuration_id,
        "deployment_id": command.deployment_id,
        "command_id": command.id,
        "task_id": command.tasks[0].id,
        "invoice_id": invoice.id,
        "export_type": "csv",
        "job_id": "nosuchjob",
        "verb": "requeue",
        "field": "active",
        "switch": "on",
        "status": "void",
        "name": "swagger-ui.css",
        "token": accounts.make_reset_token(victim),  # a form sets a password with it: not a fuzzing user's
    }
    return World(emails={"user": user.email, "admin": admin.email}, values=values, victim_id=victim.id)


class FieldNames(HTMLParser):
    """The names of every form field on a page."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def handle_starttag(self, tag, attrs):
        name = dict(attrs).get("name")
        if tag in ("input", "textarea", "select") and name:
            self.names.add(name)


def path_for(rule, values: dict) -> str:
    """The rule's path with ``values`` for its variables, percent-encoded (a raw ``%XX`` junk value kept as is)."""

    def fill(match):
        value = str(values[match.group(1)])
        return value if re.fullmatch(r"(%[0-9A-F]{2})+", value) else quote(value, safe="")

    return re.sub(r"<(?:[^>:]+:)?(\w+)>", fill, rule.rule)


def get_routes(app) -> list:
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if "GET" in rule.methods
            and rule.endpoint not in SKIPPED_ENDPOINTS
            and not rule.rule.startswith(SCHEMATHESIS)
        ),
        key=lambda rule: rule.rule,
    )


def post_routes(app) -> list:
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if "POST" in rule.methods and rule.endpoint not in SKIPPED_ENDPOINTS and not rule.rule.startswith(JSON_API)
        ),
        key=lambda rule: rule.rule,
    )


class LastError(logging.Handler):
    """The last unhandled error the app logged (its error handler logs each 500 with the traceback)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.last = ""

    def emit(self, record):
        if record.exc_info:
            self.last = "".join(traceback.format_exception_only(*record.exc_info[:2])).strip()[:300]


class Fuzzer:
    def __init__(self, app, world: World, junk=JUNK, single_junk=SINGLE_JUNK, form_junk=FORM_JUNK, roles=ROLES):
        self.app, self.world = app, world
        self.errors = LastError()
        app.logger.addHandler(self.errors)
        self.junk, self.single_junk, self.form_junk, self.roles = junk, single_junk, form_junk, roles
        self.keys = query_keys()
        self.clients = {}

    def client(self, role: str, check: bool = False):
        """The role's client, logged in (again, when ``check`` finds that a form logged it out)."""
        client = self.clients.get(role)
        if client is None:
            client = self.clients[role] = self.app.test_client()
            check = True
        if role != "anonymous" and check:
            with client.session_transaction() as session:
                logged_in = "_user_id" in session
            if not logged_in:
                response = client.post("/login", data={"email": self.world.emails[role], "password": PASSWORD})
                assert response.status_code == 302, f"{role} could not log in: {response.status_code}"
        return client

    def request(self, role: str, method: str, rule, url: str, **kwargs):
        client = self.client(role, check=method != "GET")  # only a form logs out
        try:
            response = client.open(url, method=method, **kwargs)
            status, body = response.status_code, response.get_data()
            response.close()
        except Exception as exc:  # noqa: BLE001 -- the test client raises what the app did not handle
            status, body = 599, repr(exc).encode()
        self.world.requests[role] += 1
        self.world.routes.add((method, rule.rule))
        if status >= 500:
            shown = url if len(url) < 200 else url[:200] + f"...({len(url)} characters)"
            self.world.failures.append(f"{role} {method} {shown}: {status} {self.errors.last or body[:200]!r}")
            self.errors.last = ""
        return status, body

    def get_pass(self, rules) -> None:
        for role in self.roles:
            for rule in rules:
                valid = {name: self.world.values.get(name, "x") for name in rule.arguments}
                base = path_for(rule, valid)
                status, body = self.request(role, "GET", rule, base)
                if status == 200 and b"<form" in body:
                    parser = FieldNames()
                    parser.feed(body.decode("utf-8", "replace"))
                    self.world.field_names.update(parser.names)
                for name in rule.arguments:
                    for value in self.junk:
                        self.request(role, "GET", rule, path_for(rule, {**valid, name: value}))
                # every (key, value) pair once, all keys in each request: as many requests as junk values
                for shift in range(len(self.junk)):
                    query = {key: self.junk[(shift + n) % len(self.junk)] for n, key in enumerate(self.keys)}
                    self.request(role, "GET", rule, f"{base}?{urlencode(query)}")
                # one key at a time too (a route that refuses unknown keys answers the rest with a 400), except
                # where the console turns a non-admin away before it reads any
                if role == "admin" or not rule.rule.startswith("/admin/") or rule.rule.startswith("/admin/api/"):
                    for key in self.keys:
                        for value in self.single_junk:
                            self.request(role, "GET", rule, f"{base}?{urlencode({key: value})}")

    def post_pass(self, rules) -> None:
        # every name a page showed, and those the console reads from request.form by hand (not all on a page)
        names = sorted(self.world.field_names | {"spec", "params", "size", "action", "force", "amount", "note"})
        for role in self.roles:
            for rule in rules:
                valid = {name: self.world.values.get(name, "x") for name in rule.arguments}
                if "user_id" in valid and rule.rule.startswith("/admin/"):
                    valid["user_id"] = self.world.victim_id  # the console's user actions: not on the fuzz's users
                url = path_for(rule, valid)
                for value in self.form_junk:
                    self.request(role, "POST", rule, url, data=dict.fromkeys(names, value))


@pytest.fixture
def fuzz_app(request, redis_url, tmp_path):
    """The app with its tables, and no app context pushed: each request has its own, as when served (a shared
    context would share ``g``, and Flask-Login's user in it, between the roles' clients)."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    limits = dict.fromkeys(("LOGIN_RATE_LIMIT", "SIGNUP_RATE_LIMIT", "RESET_RATE_LIMIT"), "100000/minute")
    app = make_app(url, redis_url, tmp_path, **limits)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(
    "fuzz_app, sample",
    [("sqlite", False), pytest.param("postgres", True, marks=pytest.mark.postgres)],
    indirect=["fuzz_app"],
    ids=["sqlite", "postgres"],
)
def test_no_page_or_form_answers_junk_with_a_5xx(fuzz_app, sample):
    app = fuzz_app
    with app.app_context():
        world = build_world()
    if sample:  # PostgreSQL: the admin (who reaches every page), the values that differ from SQLite's handling
        fuzzer = Fuzzer(
            app,
            world,
            junk=(str(2**31), str(10**30), "\x00", "ü✓"),
            single_junk=(str(2**63), "\x00"),
            form_junk=("a\x00b", "x" * 10_000),
            roles=("admin", "user"),
        )
    else:
        fuzzer = Fuzzer(app, world)
    gets, posts = get_routes(app), post_routes(app)
    fuzzer.get_pass(gets)
    fuzzer.post_pass(posts)
    total = sum(world.requests.values())
    print(
        f"\npage fuzz ({'postgres sample' if sample else 'sqlite'}): {len(gets)} GET and {len(posts)} POST routes, "
        f"{len(world.routes)} route-methods, {total} requests ({dict(world.requests)}), "
        f"{len(fuzzer.keys)} query keys, {len(world.field_names)} form field names, {len(world.failures)} failures"
    )
    assert len(gets) > 60 and len(posts) > 30, (len(gets), len(posts))
    assert not world.failures, f"{len(world.failures)} of {total} requests answered 5xx:\n" + "\n".join(
        world.failures[:200]
    )
