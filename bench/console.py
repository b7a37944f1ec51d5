"""Admin console: the Flask-Admin pages (lists, pages, sorts, filters, search, details, dashboard) at scale.

SQLite, or PostgreSQL with ``--postgres``: a fresh database migrated with ``flask db upgrade``, the two plans
of the service API benchmark and, seeded set-based by ``bench.service_api._seed`` (``INSERT ... SELECT``
over a series) and ANALYZEd, U users, D deployments over the two plans (about 92 % COMPLETED, 4 % FAILED,
4 % REMOVED with the default 4,000 users), one install command each with T tasks (default 4,000 / 100,000 /
10: 1,000,000 tasks). One admin logs in through ``POST /login`` (Flask test client, in this process).

Each console page is requested in-process with the test client: 2 warm-ups, then N timed requests (default
15; fewer, at least 5, when a page would take longer than ``--console-page-budget`` seconds), one after the
other; its median and p95 (server-side render, no network) are printed with the SQL statements per request
(a ``before_cursor_execute`` listener on the engine), their time in the database (``after_cursor_execute``)
and the rows shown / total of the list. Each list page is counted once more with the view's page size
cut to 5 (the view object's ``page_size``, in this process only): a count that grows with the page size is a
query per row (N+1). Pages whose median exceeds 300 ms or whose count grows are marked; for each, the
slowest statements of its median request are printed with their duration, parameters and query plan
(EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite); so are those of pages over 150 ms.

The pages come from the views the app registers (``app.extensions["admin"]``), so views added later are
listed too: each model view's lists, details and forms, and every GET route of a view whose URL arguments
are ids (``plan_id``, ``task_id``, ...: plan versions, a task's log, operations). Filter and sort URL
arguments are read from each view's ``_filter_args`` and ``_list_columns``. A page that answers an error
(or raises: TESTING propagates exceptions) is reported, not fixed. ``--console-sql`` runs statements after
seeding (e.g. a candidate index) to see what they change before writing a migration.
"""

import time

from bench.service_api import OTHER_PLAN, PLAN

NAME = "console"
SLOW_MS = 300.0
SMALL_PAGE = 5
ADMIN_EMAIL = "console-admin@bench.example.com"
ADMIN_PASSWORD = "bench console admin password"  # noqa: S105 -- a throwaway database


def add_arguments(parser) -> None:
    parser.add_argument("--console-users", type=int, default=4000, help="seeded users (default 4000)")
    parser.add_argument(
        "--console-deployments",
        type=int,
        default=100_000,
        help="seeded deployments, one command each (default 100000)",
    )
    parser.add_argument("--console-tasks", type=int, default=10, help="tasks per seeded command (default 10)")
    parser.add_argument("--console-requests", type=int, default=15, help="timed requests per page (default 15)")
    parser.add_argument(
        "--console-page-budget",
        type=float,
        default=10.0,
        help="seconds the timed requests of one page may take; fewer requests (at least 5) beyond (default 10)",
    )
    parser.add_argument(
        "--console-deep-page", type=int, default=1000, help="the deep page asked of the long lists (default 1000)"
    )
    parser.add_argument(
        "--console-sql",
        action="append",
        default=[],
        metavar="SQL",
        help="run this after seeding, then ANALYZE (repeatable): to try an index before writing its migration,"
        ' e.g. "CREATE INDEX ix_try ON service_tasks (status, id)"',
    )
    # --postgres is shared: the provisioning benchmark defines it (read with getattr(args, "postgres", False)).


# ---------------------------------------------------------------------------------------------- SQL log


class SQLLog:
    """The statements run on ``engine`` while ``on``, each with its parameters and milliseconds."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine = engine
        self.on = False
        self.records: list[dict] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        record = None
        if self.on:
            record = {"statement": statement, "parameters": parameters, "ms": None}
            self.records.append(record)
        conn.info["bench_console"] = (time.perf_counter(), record)

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        began, record = conn.info.pop("bench_console", (None, None))
        if record is not None and began is not None:
            record["ms"] = 1000 * (time.perf_counter() - began)

    def run(self, call):
        self.records = []
        self.on = True
        try:
            result = call()
        finally:
            self.on = False
        return result, list(self.records)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)


def _explain(statement: str, parameters) -> list[str]:
    """The plan of one logged statement: EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite."""
    from app.extensions import db

    postgres = db.engine.dialect.name == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    try:
        with db.engine.connect() as connection:
            rows = connection.exec_driver_sql(prefix + statement, parameters).all()
            connection.rollback()
    except Exception as exc:  # a plan is a help, not the measurement
        return [f"(no plan: {type(exc).__name__}: {str(exc).splitlines()[0][:200]})"]
    if postgres:
        return [row[0] for row in rows]
    return [str(row[-1]) for row in rows]


def _try_sql(statements: list[str]) -> dict:
    """Run the ``--console-sql`` statements (autocommit), then ANALYZE; (seconds, None) of each, for the report."""
    from app.extensions import db

    timings = {}
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for statement in [*statements, "ANALYZE"]:
            began = time.perf_counter()
            connection.exec_driver_sql(statement)
            timings[f"--console-sql {statement!r}" if statement != "ANALYZE" else "analyze again"] = (
                time.perf_counter() - began,
                None,
            )
    return timings


# ---------------------------------------------------------------------------------------------- pages


def _views(app) -> dict:
    """The model views of the admin console, by endpoint."""
    from flask_admin.model import BaseModelView

    found = {}
    for admin in app.extensions.get("admin", []):
        for view in admin._views:
            if isinstance(view, BaseModelView):
                found[view.endpoint] = view
    return found


def _column_name(column) -> str:
    """``table.column`` of a filter's column, whatever Flask-Admin keeps (a Column or an attribute)."""
    table = getattr(column, "table", None)
    key = getattr(column, "key", None) or getattr(column, "name", None)
    if table is None and hasattr(column, "property"):
        columns = getattr(column.property, "columns", None) or [None]
        table = getattr(columns[0], "table", None)
    return f"{getattr(table, 'name', '?')}.{key}"


def _filter_arg(view, column: str, value) -> str | None:
    """``flt0_<n>=value`` for the view's "equals" filter on ``table.column``; None when the view has none."""
    from urllib.parse import quote

    from flask_admin.contrib.sqla.filters import FilterEqual

    for arg, (_, flt) in (getattr(view, "_filter_args", None) or {}).items():
        if isinstance(flt, FilterEqual) and _column_name(getattr(flt, "column", None)) == column:
            return f"flt0_{arg}={quote(str(value))}"
    return None


def _sort_arg(view, column: str, desc: bool = True) -> str | None:
    """``sort=<n>`` (and ``desc=1``) for a sortable list column; None when it is not one."""
    sortable = getattr(view, "_sortable_columns", None) or {}
    for index, (name, _) in enumerate(getattr(view, "_list_columns", None) or []):
        if name == column and name in sortable:
            return f"sort={index}" + ("&desc=1" if desc else "")
    return None


# Flask-Admin's own endpoints of a model view, measured explicitly (lists, details, forms) or not at all
STANDARD_ENDPOINTS = {
    "index_view",
    "details_view",
    "create_view",
    "edit_view",
    "delete_view",
    "action_view",
    "ajax_lookup",
    "ajax_update",
    "export",
    "static",
}
# the URL arguments of the views' own GET routes (e.g. /admin/serviceplan/<plan_id>/versions), from the targets
ROUTE_ARGUMENTS = {
    "plan_id": "plan",
    "configuration_id": "configuration",
    "deployment_id": "deployment",
    "command_id": "command",
    "task_id": "task",
    "user_id": "user",
}


def _pages(app, target: dict, totals: dict, deep: int) -> tuple[list[dict], list[str]]:
    """The pages measured (label, path, view for a list) and what could not be built (e.g. a filter gone)."""
    import math

    from flask import url_for
    from flask_admin.model import BaseModelView
    from werkzeug.routing import BuildError

    views = _views(app)
    pages = [{"label": "dashboard", "path": "/admin/", "view": None}]
    missing = []

    def add(endpoint: str, label: str, query: str | None, is_list: bool = True, path: str = "") -> None:
        view = views.get(endpoint)
        if view is None:
            missing.append(f"{endpoint}: no such view")
            return
        if query is None:
            missing.append(f"{endpoint} {label}: no such filter or sortable column")
            return
        url = f"{view.url}/{path}" + (f"?{query}" if query else "")
        pages.append({"label": f"{endpoint} {label}", "path": url, "view": view if is_list else None})

    def lists(endpoint: str, count: int, sorts: tuple[str, ...]) -> None:
        view = views.get(endpoint)
        add(endpoint, "page 1", "")
        if view is None:
            return
        size = view.page_size or 20
        last = max(0, math.ceil(count / size) - 1)
        if last >= 1:
            add(endpoint, "page 2", "page=1")
        if last > deep:
            add(endpoint, f"page={deep}", f"page={deep}")
            add(endpoint, f"last page={last}", f"page={last}")
        for column in sorts:
            add(endpoint, f"sort {column} desc", _sort_arg(view, column))

    def filters(endpoint: str, *wanted: tuple[str, str, object]) -> None:
        view = views.get(endpoint)
        for label, column, value in wanted:
            if view is not None:
                add(endpoint, f"filter {label}={value}", _filter_arg(view, column, value))

    email, userid = target["email"], target["userid"]
    lists("user", totals["users"], ("created_at", "email"))
    add("user", "search list0042", "search=list0042")
    add("user", f"search {email}", f"search={email}")
    filters("user", ("admin", "users.admin", 1))
    lists("serviceplan", totals["plans"], ())
    lists("serviceconfiguration", totals["configurations"], ())
    filters("serviceconfiguration", ("plan.name", "service_plans.name", PLAN))
    lists("servicedeployment", totals["deployments"], ("created_at", "status"))
    filters(
        "servicedeployment",
        ("status", "service_deployments.status", 5),
        ("status", "service_deployments.status", 9),
        ("health", "service_deployments.health", "healthy"),
        ("health", "service_deployments.health", "unhealthy"),
        ("plan.name", "service_plans.name", PLAN),
        ("user.email", "users.email", email),
        ("user.userid", "users.userid", userid),
    )
    lists("servicecommand", totals["commands"], ("created_at", "status"))
    filters(
        "servicecommand",
        ("status", "service_commands.status", 9),
        ("phase", "service_commands.phase", "install"),
        ("failure_reason", "service_commands.failure_reason", "script error"),
        ("plan.name", "service_plans.name", OTHER_PLAN),
        ("user.email", "users.email", email),
        ("deployment_id", "service_commands.deployment_id", target["deployment"]),
    )
    lists("servicetask", totals["tasks"], ("started_at", "status"))
    filters(
        "servicetask",
        ("status", "service_tasks.status", 9),
        ("failure_reason", "service_tasks.failure_reason", "script error"),
        ("command_id", "service_tasks.command_id", target["command"]),
        ("deployment_id", "service_tasks.deployment_id", target["deployment"]),
    )
    for endpoint, key in (
        ("user", "user"),
        ("serviceplan", "plan"),
        ("serviceconfiguration", "configuration"),
        ("servicedeployment", "deployment"),
        ("servicecommand", "command"),
        ("servicetask", "task"),
    ):
        add(endpoint, f"details id={target[key]}", f"id={target[key]}", is_list=False, path="details/")
    for endpoint, key in (("user", "user"), ("serviceplan", "plan")):  # the forms, where the views have them
        view = views.get(endpoint)
        if view is not None and view.can_edit:
            add(endpoint, f"edit id={target[key]}", f"id={target[key]}", is_list=False, path="edit/")
        if view is not None and view.can_create:
            add(endpoint, "create", "", is_list=False, path="new/")
    known = {"user", "serviceplan", "serviceconfiguration", "servicedeployment", "servicecommand", "servicetask"}
    for endpoint in sorted(set(views) - known):  # model views added since: their first page at least
        add(endpoint, "page 1", "")

    # the views' own GET pages (plan versions, a task's log, operations, ...), found in the URL map
    admin_views = {view.endpoint: view for admin in app.extensions.get("admin", []) for view in admin._views}
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
            owner, _, name = rule.endpoint.partition(".")
            view = admin_views.get(owner)
            if view is None or "GET" not in (rule.methods or ()) or name in STANDARD_ENDPOINTS:
                continue
            if rule.rule.rstrip("/") == "/admin":  # the dashboard, measured first
                continue
            unknown = sorted(set(rule.arguments) - set(ROUTE_ARGUMENTS))
            if unknown:
                missing.append(f"{rule.rule}: needs {', '.join(unknown)}")
                continue
            values = {argument: target[ROUTE_ARGUMENTS[argument]] for argument in rule.arguments}
            try:
                path = url_for(rule.endpoint, **values)
            except BuildError as exc:
                missing.append(f"{rule.rule}: {exc}")
                continue
            kind = "" if isinstance(view, BaseModelView) else "page "
            pages.append({"label": f"{owner} {kind}{name} {path}", "path": path, "view": None})
    return pages, missing


# ---------------------------------------------------------------------------------------------- measuring


def _get(client, path: str):
    """(status, error text): an exception (TESTING propagates them) is an error, not a crash of the bench."""
    try:
        answer = client.get(path)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    if answer.status_code != 200:
        where = answer.headers.get("Location", "")
        return answer.status_code, f"HTTP {answer.status_code}" + (f" -> {where}" if where else "")
    return 200, None


class ListSpy:
    """What each list view's ``get_list`` returned last (total, rows), wrapped on the view object only."""

    def __init__(self, views):
        self.views = list(views)
        self.last = None
        for view in self.views:
            view.get_list = self._wrap(view.get_list)

    def _wrap(self, original):
        def get_list(*args, **kwargs):
            count, data = original(*args, **kwargs)
            if isinstance(data, list):
                self.last = (count, len(data))
            return count, data

        return get_list

    def close(self) -> None:
        for view in self.views:
            view.__dict__.pop("get_list", None)


def _measure(client, log: SQLLog, spy: ListSpy, page: dict, requests: int, budget: float) -> dict:
    from statistics import median

    result = {"times": [], "sql_ms": [], "counts": [], "records": [], "error": None, "rows": None}
    warm = []
    for _ in range(2):
        began = time.perf_counter()
        status, error = _get(client, page["path"])
        warm.append(time.perf_counter() - began)
        if error:
            result["error"] = error
            return result
    wanted = max(5, min(requests, int(budget / max(1e-3, min(warm)))))
    spy.last = None
    for _ in range(wanted):
        began = time.perf_counter()
        (status, error), records = log.run(lambda: _get(client, page["path"]))
        ms = 1000 * (time.perf_counter() - began)
        if error:
            result["error"] = error
            break
        result["times"].append(ms)
        result["sql_ms"].append(sum(record["ms"] or 0.0 for record in records))
        result["counts"].append(len(records))
        result["records"].append((ms, records))
    result["rows"] = spy.last
    if result["times"] and page["view"] is not None:
        view = page["view"]
        saved = view.page_size
        view.page_size = SMALL_PAGE  # this process's view object only: the same page, 5 rows
        try:
            _get(client, page["path"])
            (status, error), records = log.run(lambda: _get(client, page["path"]))
        finally:
            view.page_size = saved
        result["small"] = None if error else (len(records), spy.last)
    if result["records"]:  # the median request's statements, for the report
        middle = median(ms for ms, _ in result["records"])
        result["median_records"] = min(result["records"], key=lambda item: abs(item[0] - middle))[1]
    del result["records"]
    return result


def _login(app):
    """A test client with an admin's session: POST /login as the tests do, the session cookie if that fails."""
    from app.accounts import create_user
    from app.extensions import db

    user = create_user(ADMIN_EMAIL, ADMIN_PASSWORD, userid="console-admin", confirmed=True, admin=True)
    db.session.commit()
    user_id = user.id
    db.session.remove()
    client = app.test_client()
    how = "POST /login"
    answer = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    if answer.status_code != 302 or client.get("/admin/").status_code != 200:
        with client.session_transaction() as session:
            session["_user_id"] = str(user_id)
            session["_fresh"] = True
        how = f"the session cookie (POST /login answered {answer.status_code})"
    status = client.get("/admin/").status_code
    if status != 200:
        raise RuntimeError(f"cannot log in as an admin: /admin/ answers {status} after {how}")
    return client, how


def _totals() -> dict:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ServiceCommand, ServiceConfiguration, ServiceDeployment, ServicePlan, ServiceTask, User

    found = {
        name: db.session.scalar(select(func.count()).select_from(model))
        for name, model in (
            ("users", User),
            ("plans", ServicePlan),
            ("configurations", ServiceConfiguration),
            ("deployments", ServiceDeployment),
            ("commands", ServiceCommand),
            ("tasks", ServiceTask),
        )
    }
    db.session.remove()
    return found


# ---------------------------------------------------------------------------------------------- report


def _short(statement: str) -> str:
    """One line; a long select list cut to its first column and the count (the rest of the statement whole)."""
    import re

    text = " ".join(statement.split())
    found = re.match(r"SELECT (DISTINCT )?(.+?) FROM ", text)
    if found and len(found.group(2)) > 120:
        columns = found.group(2).split(", ")
        text = text.replace(found.group(2), f"{columns[0]}, ... ({len(columns)} columns)", 1)
    return text


def _report(backend: str, args, seed: dict, seed_seconds: float, totals: dict, how: str, pages, results, missing):
    from bench.provisioning import _percentile

    lines = [
        f"console: admin console pages, {backend}: {totals['users']:,} users, {totals['deployments']:,} deployments,"
        f" {totals['commands']:,} commands, {totals['tasks']:,} tasks; logged in through {how}",
        f"  seeding: {seed_seconds:.1f} s in all: "
        + ", ".join(
            f"{name} {seconds:.1f} s" + (f" ({rows:,} rows)" if rows is not None else "")
            for name, (seconds, rows) in seed.items()
        ),
        f"  in-process (Flask test client): 2 warm-ups, then up to {args.console_requests} requests per page"
        f" (at least 5, within {args.console_page_budget:g} s); SQL: statements per request, their median time"
        f" in cursor.execute (SQLite steps to the first row there: fetching the rest counts as Python time);"
        f" page {SMALL_PAGE}: statements with the view's page size cut to {SMALL_PAGE};"
        " rows: shown/total",
        "",
        f"  {'page':<58} {'n':>3} {'median ms':>9} {'p95 ms':>8} {'SQL ms':>7} {'SQL':>4} {'page 5':>6}"
        f" {'rows':>14}  notes",
    ]
    flagged, watched = [], []
    for page, result in zip(pages, results, strict=True):
        notes = []
        if result["error"]:
            dashes = f"{'':>3} {'-':>9} {'-':>8} {'-':>7} {'-':>4} {'-':>6} {'':>14}"
            lines.append(f"  {page['label'][:58]:<58} {dashes}  ERROR {result['error']}")
            flagged.append((page, result, ["ERROR"]))
            continue
        times = result["times"]
        p50, p95 = _percentile(times, 50), _percentile(times, 95)
        counts = sorted(set(result["counts"]))
        count_text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        small_text = "-"
        if "small" in result:
            small = result["small"]
            if small is None:
                small_text = "err"
            else:
                small_text = str(small[0])
                if small[0] < counts[0]:
                    notes.append(f"N+1: {counts[0]} statements at {page['view'].page_size} rows, {small[0]} at 5")
        sql_ms = _percentile(result["sql_ms"], 50)
        rows = result["rows"]
        rows_text = "-" if rows is None else f"{rows[1]}/{'?' if rows[0] is None else f'{rows[0]:,}'}"
        if p50 > SLOW_MS:
            notes.insert(0, f"SLOW (median > {SLOW_MS:.0f} ms)")
        if len(counts) > 1:
            notes.append("statement count varies")
        if notes and not all(note == "statement count varies" for note in notes):
            flagged.append((page, result, notes))
        elif p50 > SLOW_MS / 2:
            watched.append((page, result, [f"near the limit (median {p50:.0f} ms > {SLOW_MS / 2:.0f} ms)"]))
        lines.append(
            f"  {page['label'][:58]:<58} {len(times):>3} {p50:9.1f} {p95:8.1f} {sql_ms:7.1f}"
            f" {count_text:>4} {small_text:>6} {rows_text:>14}  {'; '.join(notes)}"
        )
    lines += [f"  not measured: {text}" for text in missing]
    slow = [item for item in flagged if "ERROR" not in item[2]]
    errors = [item for item in flagged if "ERROR" in item[2]]
    lines.append("")
    lines.append(
        f"  {len(pages)} pages: {len(slow)} marked (slow or N+1), {len(errors)} answered an error"
        + (": " + ", ".join(page["label"] for page, _, _ in errors) if errors else "")
    )
    print("\n".join(lines), flush=True)
    for page, result, notes in slow + watched:
        out = [f"console: {page['label']} ({page['path']}): {'; '.join(notes)}"]
        records = sorted(result.get("median_records", []), key=lambda record: -(record["ms"] or 0.0))
        out.append(f"  statements of its median request, slowest first ({len(records)} in all):")
        for record in records[:4]:
            text = _short(record["statement"])
            out.append(f"    {record['ms'] or 0.0:8.1f} ms  {text[:1500]}{' ...' if len(text) > 1500 else ''}")
            out.append(f"               parameters: {str(record['parameters'])[:200]}")
        if records and (records[0]["ms"] or 0.0) >= 20:
            out.append("  its plan:")
            out += [f"    {line}" for line in _explain(records[0]["statement"], records[0]["parameters"])]
        if any(note.startswith("N+1") for note in notes):
            from collections import Counter

            repeated = Counter(_short(record["statement"])[:160] for record in records)
            out.append("  repeated statements:")
            out += [f"    {n:4d} x {text}" for text, n in repeated.most_common(5) if n > 1]
        print("\n".join(out), flush=True)


# ---------------------------------------------------------------------------------------------- entry


def run(args) -> None:
    from bench.service_api import _load_plans, _seed, _targets
    from bench.setup_app import bench_app

    if min(args.console_users, args.console_deployments, args.console_tasks, args.console_requests) < 1:
        raise ValueError("--console-users, -deployments, -tasks and -requests must be at least 1")
    run_started = time.perf_counter()
    # Redis: the login's rate limit is kept there
    with bench_app("console", "console", getattr(args, "postgres", False)) as setup:
        app, context = setup.app, setup.context
        log = spy = None
        try:
            from sqlalchemy import func, select

            from app.extensions import db
            from app.models import ServiceConfiguration, ServicePlan, User

            _load_plans(app)
            print(
                f"console:   seeding {args.console_users} users, {args.console_deployments} deployments,"
                f" {args.console_deployments * args.console_tasks} tasks",
                flush=True,
            )
            began = time.perf_counter()
            seed = _seed(args.console_users, args.console_deployments, args.console_tasks)
            seed_seconds = time.perf_counter() - began
            if args.console_sql:
                seed.update(_try_sql(args.console_sql))
            target = _targets()
            client, how = _login(app)
            target["user"] = db.session.scalar(select(User.id).where(User.userid == target["userid"]))
            target["plan"] = db.session.scalar(select(ServicePlan.id).where(ServicePlan.name == PLAN))
            target["configuration"] = db.session.scalar(
                select(func.max(ServiceConfiguration.id)).where(ServiceConfiguration.plan_id == target["plan"])
            )
            db.session.remove()
            totals = _totals()
            pages, missing = _pages(app, target, totals, args.console_deep_page)
            log = SQLLog(db.engine)
            spy = ListSpy(_views(app).values())
            results = []
            # each request in an app context of its own, as when served: with the bench's context pushed, the
            # test client's requests would share it, and one session with its identity map (the logged-in user,
            # the rows)
            db.session.remove()
            context.pop()
            try:
                for page in pages:
                    began = time.perf_counter()
                    results.append(_measure(client, log, spy, page, args.console_requests, args.console_page_budget))
                    print(f"console:   {page['label']}: {time.perf_counter() - began:.1f} s", flush=True)
            finally:
                context.push()
            _report(setup.backend, args, seed, seed_seconds, totals, how, pages, results, missing)
            print(f"console: whole run {time.perf_counter() - run_started:.1f} s", flush=True)
        finally:
            if spy is not None:
                spy.close()
            if log is not None:
                log.close()
