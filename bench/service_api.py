"""Service API: commands under load through POST/GET /admin/api/v2/service/command, and the list endpoints at scale.

Part 1, commands under load (SQLite, or PostgreSQL with ``--postgres``): a fresh database migrated with
``flask db upgrade``, the plan ``bench-api`` (offered, not one per user, one step: ``script: noop.sh``,
which runs ``true``), C users each with an API key (``app.accounts``, in this process), ``gunicorn -w W
--worker-class sync wsgi:app`` with ``OMEGAOPS_ENV=production`` on 127.0.0.1 and 2 ``flask worker``
processes. C client threads (one ``requests.Session`` each) start together; each issues its commands one
after the other, as ``om cloud add`` does: ``POST /admin/api/v2/service/command`` (``Authorization:
ApiKey <userid>:<key>``), expects 201 and ``Location``, then polls that Location every P seconds until
``int(status) > 1``. The commands per client are drawn from a range (default 1-3, a fixed seed).
Commands/s runs from the first POST to the last completion seen by a client; POST->completed includes
up to one poll interval of waiting. The GET answers 201 to ApiKey requests (the omegaml 0.18 quirk of
CLIENT-CONTRACT.md): 200 and 201 both count as answers.

Part 2, list endpoints at scale (PostgreSQL only; skipped with a note on SQLite): U users, D deployments
over two plans (95 % COMPLETED, 2.5 % FAILED, 2.5 % REMOVED), one install command each with T tasks
(default 1,000 / 100,000 / 10: 1,000,000 tasks), seeded set-based with ``INSERT ... SELECT FROM
generate_series`` and ANALYZEd. Then each endpoint is requested N times in a row through the same
gunicorn, as an admin and as an ordinary user (one of the seeded users), and its p50 / p95 printed.
SQL statements per request are counted in this process (Flask test client, same database, a
``before_cursor_execute`` listener), once with ``limit=20`` and once with ``limit=100``: a count that
grows with the page size is a query per row.
"""

import os

NAME = "service_api"
PLAN = "bench-api"
OTHER_PLAN = "bench-api-other"
SCRIPT = "noop.sh"
PREFIX = "/admin/api/v2/service"
TARGET_P50_MS = 300.0


def add_arguments(parser) -> None:
    parser.add_argument("--service-clients", type=int, default=200, help="concurrent API clients (default 200)")
    parser.add_argument(
        "--service-commands",
        default="1-3",
        help="commands each client issues, one after the other: N or A-B, drawn per client (default 1-3)",
    )
    parser.add_argument("--service-poll", type=float, default=0.2, help="seconds between polls (default 0.2)")
    parser.add_argument(
        "--service-gunicorn-workers", type=int, default=4, help="gunicorn sync workers for this benchmark (default 4)"
    )
    parser.add_argument("--service-workers", type=int, default=2, help="omegaops RQ workers (default 2)")
    parser.add_argument(
        "--service-wait", type=float, default=300, help="seconds the command load may take in all (default 300)"
    )
    parser.add_argument("--service-users", type=int, default=1000, help="seeded users for the lists (default 1000)")
    parser.add_argument(
        "--service-deployments",
        type=int,
        default=100_000,
        help="seeded deployments, one command each (default 100000)",
    )
    parser.add_argument("--service-tasks", type=int, default=10, help="tasks per seeded command (default 10)")
    parser.add_argument(
        "--service-requests", type=int, default=50, help="timed requests per list endpoint and caller (default 50)"
    )
    # --postgres is shared: the provisioning benchmark defines it (read with getattr(args, "postgres", False)).


# ---------------------------------------------------------------------------------------------- set-up


def _command_counts(spec: str, clients: int) -> list[int]:
    import random

    low, _, high = spec.partition("-")
    try:
        low, high = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--service-commands must be N or A-B, got {spec!r}") from None
    if low < 1 or high < low:
        raise ValueError(f"--service-commands must be N or A-B with 1 <= A <= B, got {spec!r}")
    rng = random.Random(5)  # noqa: S311 -- how many commands, not secrets
    return [rng.randint(low, high) for _ in range(clients)]


def _load_plans(app) -> None:
    from app.extensions import db
    from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

    scripts = app.config["SCRIPTS_DIR"]
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / SCRIPT).write_text("#!/bin/bash\ntrue\n")
    text = "".join(
        f"""
- plan: {name}
  title: {name}
  offered: true
  one_per_user: false
  configuration:
    env: {{}}
  steps:
    - script: {SCRIPT}
"""
        for name in (PLAN, OTHER_PLAN)
    )
    apply_specs(parse_specs(text, "bench", scripts, spec_fallbacks(app.config)))
    db.session.commit()


def _make_clients(count: int, prefix: str, admin: bool = False) -> list[tuple[str, str]]:
    """``count`` confirmed users with one API key each, through ``app.accounts``; (userid, key) of each."""
    from app.accounts import create_api_key, create_user
    from app.extensions import db

    made = []
    for index in range(count):
        userid = f"{prefix}{index:04d}"
        user = create_user(f"{userid}@bench.example.com", None, userid=userid, confirmed=True, admin=admin)
        _, key = create_api_key(user, "bench")
        made.append((userid, key))
    db.session.commit()
    db.session.remove()
    return made


def _key_for(userid: str) -> str:
    from app.accounts import create_api_key
    from app.extensions import db
    from app.models import User

    _, key = create_api_key(User.find(userid), "bench")
    db.session.commit()
    db.session.remove()
    return key


def _api_routes(app) -> list[str]:
    return sorted(str(rule) for rule in app.url_map.iter_rules() if str(rule).startswith(PREFIX))


def _auth(userid: str, key: str) -> dict:
    return {"Authorization": f"ApiKey {userid}:{key}"}


def _wait_for_rq_workers(redis_url: str, count: int, pool, timeout: float = 60) -> None:
    import time

    from redis import Redis
    from rq import Worker

    connection = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout
        while Worker.count(connection=connection) < count:
            pool.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} RQ workers did not register within {timeout:g}s")
            time.sleep(0.1)
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------- part 1: load


def _warm_up(base: str, userid: str, key: str, workers: int) -> None:
    """A POST and a few GETs on 2 x W connections at once, so every gunicorn worker has served both before the load."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urljoin

    import requests

    def one(_) -> None:
        with requests.Session() as session:
            session.headers.update(_auth(userid, key))
            body = {"offering": PLAN, "user": userid, "phase": "install", "params": ""}
            answer = session.post(base + PREFIX + "/command", json=body, timeout=60)
            if answer.status_code != 201:
                raise RuntimeError(f"warm-up POST {PREFIX}/command: {answer.status_code} {answer.text[:300]}")
            for _ in range(3):
                answer = session.get(urljoin(base + "/", answer.headers["Location"]), timeout=60)
                if answer.status_code not in (200, 201):
                    raise RuntimeError(f"warm-up GET: {answer.status_code} {answer.text[:300]}")

    with ThreadPoolExecutor(2 * workers) as pool:
        list(pool.map(one, range(2 * workers)))


def _client(base: str, auth: dict, userid: str, commands: int, poll: float, deadline: float, start, stop) -> list:
    """One client: ``commands`` installs one after the other, each polled to its end; a record per command."""
    import time
    from urllib.parse import urljoin

    import requests

    records = []
    session = requests.Session()
    session.headers.update(auth)
    body = {"offering": PLAN, "user": userid, "phase": "install", "params": ""}
    start.wait()
    try:
        for _ in range(commands):
            record = {"post_start": time.perf_counter(), "post_status": None, "gets": [], "get_errors": {}}
            records.append(record)
            try:
                answer = session.post(base + PREFIX + "/command", json=body, timeout=60)
            except requests.RequestException as exc:
                record["post_status"] = type(exc).__name__
                continue
            record["post_end"] = time.perf_counter()
            record["post_status"] = answer.status_code
            location = answer.headers.get("Location")
            if answer.status_code != 201 or not location:
                record["post_body"] = answer.text[:300]
                continue
            url = urljoin(base + "/", location)
            record["location"] = location
            while not stop.is_set():
                if time.monotonic() > deadline:
                    record["timeout"] = True
                    break
                time.sleep(poll)
                began = time.perf_counter()
                try:
                    answer = session.get(url, timeout=60)
                except requests.RequestException as exc:
                    name = type(exc).__name__
                    record["get_errors"][name] = record["get_errors"].get(name, 0) + 1
                    continue
                ended = time.perf_counter()
                record["gets"].append(1000 * (ended - began))
                if answer.status_code not in (200, 201):
                    record["get_errors"][answer.status_code] = record["get_errors"].get(answer.status_code, 0) + 1
                    continue
                data = answer.json()
                if int(data["status"]) > 1:
                    record["done"] = ended
                    record["status"] = data["status"]
                    record["server"] = (data.get("created_at"), data.get("started_at"), data.get("finished_at"))
                    break
            if stop.is_set() or record.get("timeout"):
                break
    finally:
        session.close()
    return records


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` (with ``children``: also of its reaped children); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def _postmaster_pid(postgres) -> int | None:
    try:
        return int((postgres.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def cpu_snapshot(gunicorn_pids, worker_pids, redis_pid, postmaster) -> dict[str, float]:
    """CPU seconds so far of each group of processes of the run."""
    import resource

    from bench.provisioning import _children

    snapshot = {
        "gunicorn workers": sum(_cpu_seconds(pid) for pid in gunicorn_pids),
        "RQ workers (with their scripts)": sum(_cpu_seconds(pid, children=True) for pid in worker_pids),
        "this process (client threads)": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
        "redis": _cpu_seconds(redis_pid),
    }
    if postmaster:
        snapshot["postgresql"] = _cpu_seconds(postmaster, children=True) + sum(
            _cpu_seconds(pid) for pid in _children(postmaster)
        )
    return snapshot


def _run_load(base: str, clients: list[tuple[str, str]], counts: list[int], poll: float, wait: float) -> dict:
    import threading
    import time

    start, stop = threading.Event(), threading.Event()
    deadline = time.monotonic() + wait
    results: list = [None] * len(clients)

    def work(index: int) -> None:
        userid, key = clients[index]
        try:
            results[index] = _client(base, _auth(userid, key), userid, counts[index], poll, deadline, start, stop)
        except Exception as exc:  # a client's crash is reported, not raised in its thread
            results[index] = [{"post_status": f"crash {type(exc).__name__}: {exc}", "gets": [], "get_errors": {}}]

    threads = [
        threading.Thread(target=work, args=(index,), name=f"client-{index}", daemon=True)
        for index in range(len(clients))
    ]
    for thread in threads:
        thread.start()
    try:
        started = time.perf_counter()
        start.set()
        for thread in threads:
            thread.join(max(1.0, deadline - time.monotonic() + 90))
    finally:
        stop.set()
    alive = sum(thread.is_alive() for thread in threads)
    return {"started": started, "records": [r for found in results for r in (found or [])], "stuck_clients": alive}


def _server_seconds(server) -> tuple[float | None, float | None]:
    from datetime import datetime

    created, started, finished = (datetime.fromisoformat(v) if v else None for v in server)
    if created is None or finished is None:
        return None, None
    return (finished - created).total_seconds() * 1000, (
        (finished - started).total_seconds() * 1000 if started else None
    )


def _report_load(args, backend: str, load: dict, counts: list[int], sql: dict, setup_seconds: float) -> None:
    from collections import Counter

    from bench.provisioning import _percentile

    records = load["records"]
    posts = [1000 * (r["post_end"] - r["post_start"]) for r in records if "post_end" in r]
    done = [r for r in records if "done" in r]
    completion = [1000 * (r["done"] - r["post_start"]) for r in done]
    gets = [ms for r in records for ms in r["gets"]]
    outcomes = Counter(r["status"] for r in done)
    post_errors = Counter(str(r["post_status"]) for r in records if r["post_status"] != 201)
    get_errors = Counter()
    for r in records:
        get_errors.update({str(k): v for k, v in r["get_errors"].items()})
    unfinished = sum(1 for r in records if r["post_status"] == 201 and "done" not in r)
    server = [_server_seconds(r["server"]) for r in done]
    issued_to_finished = [s[0] for s in server if s[0] is not None]
    run_ms = [s[1] for s in server if s[1] is not None]
    last = max((r["done"] for r in done), default=None)
    wall = (last - load["started"]) if last else float("nan")

    def pcts(values: list[float]) -> str:
        if not values:
            return "n/a"
        return ", ".join(f"p{p} {_percentile(values, p):.0f} ms" for p in (50, 95, 99))

    bad = sum(count for status, count in outcomes.items() if status != "5") + unfinished
    total = sum(counts)
    lines = [
        f"service_api: part 1, commands under load: {args.service_clients} clients x {args.service_commands}"
        f" commands ({total} in all), gunicorn -w {args.service_gunicorn_workers} (sync),"
        f" {args.service_workers} workers, poll every {args.service_poll:g} s, {backend}",
        f"  set-up (migrate, plans, {args.service_clients} users and keys through app.accounts):"
        f" {setup_seconds:.1f} s; load average before the load: {load['loadavg']:.1f}",
        f"  commands: {len(records)} POSTed, {len(done)} final; {len(done) / wall:.1f} commands/s end to end"
        f" ({wall:.2f} s from the first POST to the last completion seen)",
        f"  POST latency: {pcts(posts)} (max {max(posts, default=float('nan')):.0f} ms)",
        f"  POST -> completed (seen by polling every {args.service_poll:g} s): {pcts(completion)}",
        f"  server side (the command's created_at -> finished_at): {pcts(issued_to_finished)};"
        f" started_at -> finished_at: {pcts(run_ms)}",
        f"  polls: {len(gets)} GETs ({len(gets) / max(1, len(done)):.1f} per command), latency {pcts(gets)}",
        f'  outcomes: {dict(sorted(outcomes.items()))}; not "5": {bad}'
        f" (of which never final: {unfinished}); HTTP errors: POST {sum(post_errors.values())}"
        + (f" {dict(post_errors)}" if post_errors else "")
        + f", GET {sum(get_errors.values())}"
        + (f" {dict(get_errors)}" if get_errors else ""),
    ]
    if load.get("cpu"):
        requests_served = len(posts) + len(gets)
        busy = sum(load["cpu"].values())
        lines.append(
            f"  CPU during the load ({os.cpu_count()} cores, {wall:.1f} s: {busy:.1f} CPU s of"
            f" {wall * (os.cpu_count() or 1):.1f}): "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in load["cpu"].items())
        )
        gunicorn_cpu = load["cpu"].get("gunicorn workers", 0.0)
        workers_cpu = load["cpu"].get("RQ workers (with their scripts)", 0.0)
        lines.append(
            f"    per request served by gunicorn: {1000 * gunicorn_cpu / max(1, requests_served):.1f} ms CPU"
            f" ({requests_served} POSTs and GETs); per command in the RQ workers:"
            f" {1000 * workers_cpu / max(1, len(done)):.1f} ms CPU"
        )
    if load["stuck_clients"]:
        lines.append(f"  {load['stuck_clients']} client threads had not finished when the load was stopped")
    samples = [r for r in records if r["post_status"] != 201 and "post_body" in r][:3]
    lines += [f"  e.g. POST {r['post_status']}: {r['post_body']}" for r in samples]
    if sql:
        lines.append(
            f"  SQL statements (in-process, same database): POST command {sql.get('post', '?')},"
            f" GET command (polled) {sql.get('get', '?')}"
        )
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------------------- SQL counting


class StatementCounter:
    """Counts the SQL statements run on ``db.engine`` while ``on`` (a ``before_cursor_execute`` listener)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.engine = engine
        self.on = False
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._listen)

    def _listen(self, conn, cursor, statement, parameters, context, executemany):
        if self.on:
            self.statements.append(" ".join(statement.split()))

    def run(self, call):
        self.statements = []
        self.on = True
        try:
            result = call()
        finally:
            self.on = False
        return result, list(self.statements)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._listen)


def _count_request(app, counter, method: str, path: str, headers: dict, json=None) -> tuple[int, list[str]]:
    """Run one request in-process, uncounted first (key marking, caches), then counted; (status, statements)."""
    client = app.test_client()
    if method == "GET":
        client.get(path, headers=headers)
        answer, statements = counter.run(lambda: client.get(path, headers=headers))
    else:
        answer, statements = counter.run(lambda: client.open(path, method=method, headers=headers, json=json))
    return answer.status_code, statements


def _count_load_sql(app, userid: str, key: str) -> dict:
    """SQL statements of one POST command and of one GET of it (as polled), run in-process."""
    from app.extensions import db

    counter = StatementCounter(db.engine)
    try:
        body = {"offering": PLAN, "user": userid, "phase": "install", "params": ""}
        client = app.test_client()
        client.get(f"{PREFIX}/command/", headers=_auth(userid, key))  # marks the key used: not counted
        answer, post = counter.run(lambda: client.post(f"{PREFIX}/command", headers=_auth(userid, key), json=body))
        if answer.status_code != 201:
            return {"post": f"? ({answer.status_code})"}
        location = answer.headers["Location"]
        path = location if location.startswith("/") else "/" + location.split("/", 3)[3]
        status, get = _count_request(app, counter, "GET", path, _auth(userid, key))
        return {"post": len(post), "get": len(get) if status in (200, 201) else f"? ({status})"}
    finally:
        counter.close()
        db.session.remove()


# ---------------------------------------------------------------------------------------------- part 2: seed


def _seed(users: int, deployments: int, tasks: int) -> dict:
    """Seed ``users`` users, ``deployments`` deployments over two plans, one command each with ``tasks`` tasks.

    Set-based SQL: each table is one INSERT ... SELECT over generate_series (PostgreSQL) or a recursive
    series (SQLite, the same rows: see ``_seed_sqlite``). The plans of ``_load_plans`` must be there; the
    users are ``list00000``... Returns (seconds, rows) of each part. Also used by ``bench.console``.
    """
    import time

    from sqlalchemy import text

    from app.extensions import db

    timings = {}

    def timed(name: str, sql: str, **params) -> int:
        began = time.perf_counter()
        with db.engine.begin() as connection:
            rows = connection.execute(text(sql), params).rowcount
        timings[name] = (time.perf_counter() - began, rows if rows >= 0 else None)  # SQLite: -1 after a WITH
        return rows

    if db.engine.dialect.name == "sqlite":
        _seed_sqlite(timed, users, deployments, tasks)
        began = time.perf_counter()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
        timings["analyze"] = (time.perf_counter() - began, None)
        return timings

    timed(
        "users",
        """
        INSERT INTO users (email, userid, first_name, last_name, password_hash, active, admin, email_confirmed_at,
                           created_at, company, billing_address, country, tax_id)
        SELECT 'list' || lpad(g::text, 5, '0') || '@bench.example.com', 'list' || lpad(g::text, 5, '0'), 'Bench',
               'List ' || g, NULL, true, false, now() - interval '400 days', now() - interval '400 days',
               '', '', '', ''
        FROM generate_series(0, :users - 1) AS g
        """,
        users=users,
    )
    # deployment g is the k-th (k = g / U) of user g % U, one minute after g - 1; by k, each user's are on
    # both plans (k % 2) and 95 % COMPLETED, 2.5 % FAILED, 2.5 % REMOVED (k % 40 = 7, 23)
    timed(
        "deployments",
        """
        WITH u AS (
            SELECT id, userid, (row_number() OVER (ORDER BY id)) - 1 AS n FROM users WHERE userid LIKE 'list%'
        ), p AS (
            SELECT p.id AS plan_id, c.id AS configuration_id, (row_number() OVER (ORDER BY p.name)) - 1 AS n
            FROM service_plans p JOIN service_configurations c ON c.plan_id = p.id
            WHERE p.name IN (:plan, :other)
        ), g AS (
            SELECT g, now() - (:deployments - g) * interval '1 minute' AS at,
                   CASE WHEN (g / :users) % 40 = 7 THEN 9 WHEN (g / :users) % 40 = 23 THEN 8 ELSE 5 END AS status
            FROM generate_series(0, :deployments - 1) AS g
        )
        INSERT INTO service_deployments (user_id, plan_id, configuration_id, settings, text, params, health,
                                         checked_at, created_at, updated_at, removed_at, status)
        SELECT u.id, p.plan_id, p.configuration_id,
               CASE WHEN g.status = 8 THEN '{}'::jsonb ELSE jsonb_build_object('default', jsonb_build_object(
                   'OMEGA_MONGO_URL',
                       'mongodb://' || u.userid || ':' || md5(g.g::text) || :mongo_host || u.userid || '_' || g.g,
                   'OMEGA_CELERY_CONFIG', jsonb_build_object(
                       'BROKER_URL', 'amqp://' || u.userid || ':' || md5(g.g::text) || '@rabbitmq.bench.internal/',
                       'CELERY_DEFAULT_QUEUE', 'default'),
                   'OMEGA_USERID', u.userid, 'OMEGA_QUALIFIER', 'default')) END,
               'deployed by the benchmark', jsonb_build_object('size', '1'),
               CASE WHEN g.status = 5 THEN 'healthy' ELSE 'unknown' END,
               CASE WHEN g.status = 5 THEN g.at + interval '1 hour' END,
               g.at, g.at + interval '5 seconds', CASE WHEN g.status = 8 THEN g.at + interval '1 day' END, g.status
        FROM g JOIN u ON u.n = g.g % :users JOIN p ON p.n = (g.g / :users) % 2
        ORDER BY g.g
        """,
        users=users,
        deployments=deployments,
        plan=PLAN,
        other=OTHER_PLAN,
        mongo_host="@mongodb.bench.internal:27017/",  # a bind parameter: text() reads ':27017' as one
    )
    timed(
        "commands",
        """
        INSERT INTO service_commands (issuer_id, user_id, plan_id, deployment_id, configuration_id, phase, params,
                                      params_raw, failure_reason, failure_detail, idempotency_key, created_at,
                                      started_at, finished_at, heartbeat_at, worker, status)
        SELECT d.user_id, d.user_id, d.plan_id, d.id, d.configuration_id, 'install', jsonb_build_object('size', '1'),
               'size=1', CASE WHEN d.status = 9 THEN 'script error' END,
               CASE WHEN d.status = 9 THEN 'step ' || :tasks || ' (noop) failed: exit code 1' ELSE '' END, NULL,
               d.created_at, d.created_at + interval '1 second', d.created_at + interval '4 seconds',
               d.created_at + interval '4 seconds', 'bench:1', CASE WHEN d.status = 9 THEN 9 ELSE 5 END
        FROM service_deployments d JOIN users u ON u.id = d.user_id
        WHERE u.userid LIKE 'list%'
        ORDER BY d.id
        """,
        tasks=tasks,
    )
    timed(
        "tasks",
        """
        INSERT INTO service_tasks (command_id, deployment_id, position, attempt, name, step, resolved, exit_code,
                                   log, outputs, heartbeat_at, failure_reason, host, pgid, created_at, started_at,
                                   finished_at, status)
        SELECT c.id, c.deployment_id, t, 1, 'noop ' || t,
               jsonb_build_object('kind', 'script', 'target', 'noop.sh', 'language', 'shell', 'params', '',
                                  'timeout', 600, 'retries', 0),
               NULL, CASE WHEN c.status = 9 AND t = :tasks THEN 1 ELSE 0 END,
               'step ' || t || ' of command ' || c.id || E': ran noop.sh\\ndone\\n', '{}'::jsonb,
               c.started_at + t * interval '200 milliseconds',
               CASE WHEN c.status = 9 AND t = :tasks THEN 'script error' END, 'bench', 4242,
               c.created_at, c.started_at + (t - 1) * interval '200 milliseconds',
               c.started_at + t * interval '200 milliseconds',
               CASE WHEN c.status = 9 AND t = :tasks THEN 9 ELSE 5 END
        FROM service_commands c CROSS JOIN generate_series(1, :tasks) AS t
        WHERE c.user_id IN (SELECT id FROM users WHERE userid LIKE 'list%')
        ORDER BY c.id, t
        """,
        tasks=tasks,
    )
    began = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    timings["vacuum analyze"] = (time.perf_counter() - began, None)
    return timings


def _seed_sqlite(timed, users: int, deployments: int, tasks: int) -> None:
    """The rows of ``_seed`` on SQLite: a recursive series for generate_series, json_object for jsonb, epoch
    seconds formatted as SQLAlchemy writes datetimes there (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC; ``%f`` is
    ``SS.SSS``, hence ``|| '000'``)."""
    import time

    now = int(time.time())
    timed(
        "users",
        """
        WITH RECURSIVE g(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM g WHERE g + 1 < :users)
        INSERT INTO users (email, userid, first_name, last_name, password_hash, active, admin, email_confirmed_at,
                           created_at, company, billing_address, country, tax_id)
        SELECT 'list' || printf('%05d', g) || '@bench.example.com', 'list' || printf('%05d', g), 'Bench',
               'List ' || g, NULL, 1, 0, strftime('%Y-%m-%d %H:%M:%S', :now - 400 * 86400, 'unixepoch') || '.000000',
               strftime('%Y-%m-%d %H:%M:%S', :now - 400 * 86400, 'unixepoch') || '.000000', '', '', '', ''
        FROM g
        """,
        users=users,
        now=now,
    )
    # the same deployments as on PostgreSQL (g.at: epoch seconds)
    timed(
        "deployments",
        """
        WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g + 1 < :deployments),
        u AS MATERIALIZED (
            SELECT id, userid, (row_number() OVER (ORDER BY id)) - 1 AS n FROM users WHERE userid LIKE 'list%'
        ), p AS MATERIALIZED (
            SELECT p.id AS plan_id, c.id AS configuration_id, (row_number() OVER (ORDER BY p.name)) - 1 AS n
            FROM service_plans p JOIN service_configurations c ON c.plan_id = p.id
            WHERE p.name IN (:plan, :other)
        ), g AS (
            SELECT g, :now - (:deployments - g) * 60 AS at, printf('%032x', g * 2654435761) AS secret,
                   CASE WHEN (g / :users) % 40 = 7 THEN 9 WHEN (g / :users) % 40 = 23 THEN 8 ELSE 5 END AS status
            FROM s
        )
        INSERT INTO service_deployments (user_id, plan_id, configuration_id, settings, text, params, health,
                                         checked_at, created_at, updated_at, removed_at, status)
        SELECT u.id, p.plan_id, p.configuration_id,
               CASE WHEN g.status = 8 THEN '{}' ELSE json_object('default', json_object(
                   'OMEGA_MONGO_URL',
                       'mongodb://' || u.userid || ':' || g.secret || :mongo_host || u.userid || '_' || g.g,
                   'OMEGA_CELERY_CONFIG', json_object(
                       'BROKER_URL', 'amqp://' || u.userid || ':' || g.secret || '@rabbitmq.bench.internal/',
                       'CELERY_DEFAULT_QUEUE', 'default'),
                   'OMEGA_USERID', u.userid, 'OMEGA_QUALIFIER', 'default')) END,
               'deployed by the benchmark', json_object('size', '1'),
               CASE WHEN g.status = 5 THEN 'healthy' ELSE 'unknown' END,
               CASE WHEN g.status = 5 THEN strftime('%Y-%m-%d %H:%M:%S', g.at + 3600, 'unixepoch') || '.000000' END,
               strftime('%Y-%m-%d %H:%M:%S', g.at, 'unixepoch') || '.000000',
               strftime('%Y-%m-%d %H:%M:%S', g.at + 5, 'unixepoch') || '.000000',
               CASE WHEN g.status = 8 THEN strftime('%Y-%m-%d %H:%M:%S', g.at + 86400, 'unixepoch') || '.000000' END,
               g.status
        FROM g JOIN u ON u.n = g.g % :users JOIN p ON p.n = (g.g / :users) % 2
        ORDER BY g.g
        """,
        users=users,
        deployments=deployments,
        now=now,
        plan=PLAN,
        other=OTHER_PLAN,
        mongo_host="@mongodb.bench.internal:27017/",
    )
    timed(
        "commands",
        """
        INSERT INTO service_commands (issuer_id, user_id, plan_id, deployment_id, configuration_id, phase, params,
                                      params_raw, failure_reason, failure_detail, idempotency_key, created_at,
                                      started_at, finished_at, heartbeat_at, worker, status)
        SELECT d.user_id, d.user_id, d.plan_id, d.id, d.configuration_id, 'install', json_object('size', '1'),
               'size=1', CASE WHEN d.status = 9 THEN 'script error' END,
               CASE WHEN d.status = 9 THEN 'step ' || :tasks || ' (noop) failed: exit code 1' ELSE '' END, NULL,
               d.created_at, strftime('%Y-%m-%d %H:%M:%S', d.created_at, '+1 seconds') || '.000000',
               strftime('%Y-%m-%d %H:%M:%S', d.created_at, '+4 seconds') || '.000000',
               strftime('%Y-%m-%d %H:%M:%S', d.created_at, '+4 seconds') || '.000000', 'bench:1',
               CASE WHEN d.status = 9 THEN 9 ELSE 5 END
        FROM service_deployments d JOIN users u ON u.id = d.user_id
        WHERE u.userid LIKE 'list%'
        ORDER BY d.id
        """,
        tasks=tasks,
    )
    timed(
        "tasks",
        """
        WITH RECURSIVE s(t) AS (SELECT 1 UNION ALL SELECT t + 1 FROM s WHERE t < :tasks)
        INSERT INTO service_tasks (command_id, deployment_id, position, attempt, name, step, resolved, exit_code,
                                   log, outputs, heartbeat_at, failure_reason, host, pgid, created_at, started_at,
                                   finished_at, status)
        SELECT c.id, c.deployment_id, s.t, 1, 'noop ' || s.t,
               json_object('kind', 'script', 'target', 'noop.sh', 'language', 'shell', 'params', '',
                           'timeout', 600, 'retries', 0),
               NULL, CASE WHEN c.status = 9 AND s.t = :tasks THEN 1 ELSE 0 END,
               'step ' || s.t || ' of command ' || c.id || ': ran noop.sh' || char(10) || 'done' || char(10), '{}',
               strftime('%Y-%m-%d %H:%M:%f', c.started_at, '+' || (s.t * 0.2) || ' seconds') || '000',
               CASE WHEN c.status = 9 AND s.t = :tasks THEN 'script error' END, 'bench', 4242, c.created_at,
               strftime('%Y-%m-%d %H:%M:%f', c.started_at, '+' || ((s.t - 1) * 0.2) || ' seconds') || '000',
               strftime('%Y-%m-%d %H:%M:%f', c.started_at, '+' || (s.t * 0.2) || ' seconds') || '000',
               CASE WHEN c.status = 9 AND s.t = :tasks THEN 9 ELSE 5 END
        FROM service_commands c CROSS JOIN s
        WHERE c.user_id IN (SELECT id FROM users WHERE userid LIKE 'list%')
        ORDER BY c.id, s.t
        """,
        tasks=tasks,
    )


def _targets() -> dict:
    """The objects the endpoints are asked about: a seeded user's first deployment, its command and a task."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ServiceCommand, ServiceDeployment, ServiceTask, User

    user = db.session.scalar(select(User).where(User.userid == "list00000"))
    deployment_id = db.session.scalar(
        select(func.min(ServiceDeployment.id)).where(ServiceDeployment.user_id == user.id)
    )
    command_id = db.session.scalar(select(ServiceCommand.id).where(ServiceCommand.deployment_id == deployment_id))
    task_id = db.session.scalar(select(func.min(ServiceTask.id)).where(ServiceTask.command_id == command_id))
    found = {
        "userid": user.userid,
        "email": user.email,
        "deployment": deployment_id,
        "command": command_id,
        "task": task_id,
        "tasks_of_command": db.session.scalar(
            select(func.count()).select_from(ServiceTask).where(ServiceTask.command_id == command_id)
        ),
    }
    db.session.remove()
    return found


def _endpoints(target: dict) -> list[tuple[str, str, bool]]:
    """(label, path, is a list) of each endpoint measured."""
    d, c, t = target["deployment"], target["command"], target["task"]
    return [
        ("deployment/", f"{PREFIX}/deployment/", True),
        ("deployment/?offset=50000", f"{PREFIX}/deployment/?offset=50000", True),
        (f"deployment/?user__email={target['email']}", f"{PREFIX}/deployment/?user__email={target['email']}", True),
        ("deployment/?status=5", f"{PREFIX}/deployment/?status=5", True),
        (f"deployment/?name={PLAN}", f"{PREFIX}/deployment/?name={PLAN}", True),
        ("deployment/?order_by=-created_at", f"{PREFIX}/deployment/?order_by=-created_at", True),
        ("command/", f"{PREFIX}/command/", True),
        (f"command/?deployment={d}", f"{PREFIX}/command/?deployment={d}", True),
        ("command/?status=9", f"{PREFIX}/command/?status=9", True),
        (f"command/{c}/ ({target['tasks_of_command']} tasks)", f"{PREFIX}/command/{c}/", False),
        (f"task/{t}/", f"{PREFIX}/task/{t}/", False),
        (f"task/?command={c}", f"{PREFIX}/task/?command={c}", True),
    ]


def _with_limit(path: str, limit: int) -> str:
    return f"{path}{'&' if '?' in path else '?'}limit={limit}"


def _time_endpoint(session, url: str, count: int) -> dict:
    import time

    session.get(url, timeout=120)  # warm: the worker's caches, the key's last_used_at
    times, statuses, total = [], {}, None
    for _ in range(count):
        began = time.perf_counter()
        answer = session.get(url, timeout=120)
        times.append(1000 * (time.perf_counter() - began))
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        if answer.status_code in (200, 201) and total is None:
            body = answer.json()
            total = body.get("meta", {}).get("total_count") if isinstance(body, dict) else None
            objects = body.get("objects") if isinstance(body, dict) else None
            total = (total, len(objects) if objects is not None else None)
    return {"times": times, "statuses": statuses, "total": total}


def _measure_lists(base: str, app, target: dict, callers: dict, count: int) -> list[dict]:
    import requests

    from app.extensions import db

    counter = StatementCounter(db.engine)
    rows = []
    try:
        for label, path, is_list in _endpoints(target):
            row = {"label": label, "is_list": is_list}
            for who, (userid, key) in callers.items():
                with requests.Session() as session:
                    session.headers.update(_auth(userid, key))
                    row[who] = _time_endpoint(session, base + path, count)
                status, statements = _count_request(app, counter, "GET", path, _auth(userid, key))
                row[f"{who}_sql"] = (status, statements)
                if is_list:
                    status, statements = _count_request(
                        app, counter, "GET", _with_limit(path, 100), _auth(userid, key)
                    )
                    row[f"{who}_sql100"] = (status, statements)
            rows.append(row)
            print(f"service_api:   measured {label}", flush=True)
    finally:
        counter.close()
        db.session.remove()
    return rows


def _report_lists(args, seed: dict, seed_seconds: float, target: dict, rows: list[dict]) -> None:
    from collections import Counter

    from bench.provisioning import _percentile

    tasks_total = args.service_deployments * args.service_tasks
    lines = [
        f"service_api: part 2, list endpoints: {args.service_users} users, {args.service_deployments} deployments,"
        f" {args.service_deployments} commands, {tasks_total} tasks (postgresql); {args.service_requests} requests"
        " each, one after the other, through the same gunicorn",
        f"  seeding (INSERT ... SELECT FROM generate_series): {seed_seconds:.1f} s in all: "
        + ", ".join(
            f"{name} {seconds:.1f} s" + (f" ({rows_:,} rows)" if rows_ is not None else "")
            for name, (seconds, rows_) in seed.items()
        ),
        f"  ordinary user: {target['userid']} ({target['email']}); deployment {target['deployment']}, command"
        f" {target['command']}, task {target['task']}",
        "  SQL: statements per request in-process (Flask test client, same database), limit=20 / limit=100;"
        " total: meta.total_count / objects on the page",
        "",
        f"  {'endpoint':<52} {'admin p50':>9} {'p95':>7} {'user p50':>9} {'p95':>7}  {'SQL admin':>10}"
        f" {'SQL user':>9}  {'total admin':>12} {'total user':>11}  notes",
    ]
    problems = []

    def sql_text(row: dict, who: str) -> str:
        status, statements = row[f"{who}_sql"]
        text = str(len(statements)) if status in (200, 201) else f"({status})"
        if row["is_list"]:
            status100, statements100 = row[f"{who}_sql100"]
            text += "/" + (str(len(statements100)) if status100 in (200, 201) else f"({status100})")
        return text

    for row in rows:
        notes = []
        cells = []
        for who in ("admin", "user"):
            times = row[who]["times"]
            p50, p95 = _percentile(times, 50), _percentile(times, 95)
            cells.append(f"{p50:9.1f} {p95:7.1f}")
            bad = {s: n for s, n in row[who]["statuses"].items() if s not in (200, 201)}
            if bad:
                notes.append(f"{who} HTTP {bad}")
            if p50 > TARGET_P50_MS:
                notes.append(f"{who} SLOW (p50 > {TARGET_P50_MS:.0f} ms)")
                problems.append((row, who, "slow"))
            if row["is_list"]:
                s20, s100 = row[f"{who}_sql"][1], row[f"{who}_sql100"][1]
                if len(s100) != len(s20):
                    notes.append(f"{who} SQL GROWS with the page")
                    problems.append((row, who, "grows"))
        totals = []
        for who in ("admin", "user"):
            total = row[who]["total"]
            totals.append("-" if not total or total[0] is None else f"{total[0]}/{total[1]}")
        lines.append(
            f"  {row['label'][:52]:<52} {cells[0]} {cells[1]}  {sql_text(row, 'admin'):>10} {sql_text(row, 'user'):>9}"
            f"  {totals[0]:>12} {totals[1]:>11}  {'; '.join(notes)}"
        )
    for row in [rows[0], *(row for row in rows if not row["is_list"])]:
        statements = row["admin_sql"][1]
        lines.append(f"  statements of {row['label']} as admin (first 100 characters):")
        lines += [f"    {statement[:100]}" for statement in statements]
    for row, who, kind in problems:
        key = f"{who}_sql100" if kind == "grows" and row["is_list"] else f"{who}_sql"
        statements = row[key][1]
        counts = Counter(statement[:110] for statement in statements)
        lines.append(f"  statements of {row['label']} as {who} ({'limit=100' if key.endswith('100') else 'default'}):")
        lines += [f"    {n:4d} x {text}" for text, n in counts.most_common(8)]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------------------- entry


def run(args) -> None:
    import sys
    import time
    from pathlib import Path

    from bench.config_api import Gunicorn
    from bench.provisioning import Workers
    from bench.setup_app import bench_app

    if min(args.service_clients, args.service_gunicorn_workers, args.service_workers, args.service_requests) < 1:
        raise ValueError("--service-clients, -gunicorn-workers, -workers and -requests must be at least 1")
    if min(args.service_users, args.service_deployments, args.service_tasks) < 1 or args.service_poll <= 0:
        raise ValueError("--service-users, -deployments, -tasks must be at least 1, --service-poll above 0")
    counts = _command_counts(args.service_commands, args.service_clients)
    postgres_wanted = getattr(args, "postgres", False)
    run_started = time.perf_counter()
    with bench_app("service_api", "service", postgres_wanted, f"{args.service_clients} clients, ") as setup:
        from tests.processes import ROOT, process_env

        app, redis, tmp = setup.app, setup.redis, setup.tmp
        server = pool = None
        try:
            if not any(route.startswith(f"{PREFIX}/command") for route in _api_routes(app)):
                raise RuntimeError(f"the service API is not there: no {PREFIX}/command route in the app")
            _load_plans(app)
            clients = _make_clients(args.service_clients, "load")
            (probe,) = _make_clients(1, "probe")
            setup_seconds = time.perf_counter() - run_started

            server = Gunicorn(setup.env, setup.root, tmp, args.service_gunicorn_workers)
            server.wait_ready(args.service_gunicorn_workers)
            flask = str(Path(sys.executable).parent / "flask")
            pool = Workers("worker", [flask, "worker"], args.service_workers, process_env(app), ROOT, tmp)
            _wait_for_rq_workers(redis.url, args.service_workers, pool)

            _warm_up(server.base, *probe, args.service_gunicorn_workers)
            print(f"service_api:   load: {sum(counts)} commands from {len(clients)} clients", flush=True)
            processes = (
                server.workers(),
                [p.pid for p in pool.processes],
                redis.process.pid,
                _postmaster_pid(setup.postgres),
            )
            loadavg = os.getloadavg()[0]
            before = cpu_snapshot(*processes)
            load = _run_load(server.base, clients, counts, args.service_poll, args.service_wait)
            after = cpu_snapshot(*processes)
            load["cpu"] = {name: after[name] - before[name] for name in before}
            load["loadavg"] = loadavg
            pool.check_alive()
            sql = _count_load_sql(app, *probe)
            _report_load(args, setup.backend, load, counts, sql, setup_seconds)
            pool.stop()
            pool = None

            if not postgres_wanted:
                print(
                    "service_api: part 2, list endpoints at scale: skipped on SQLite (run with --postgres: it seeds"
                    f" {args.service_deployments} deployments and {args.service_deployments * args.service_tasks}"
                    " tasks)",
                    flush=True,
                )
            else:
                print(
                    f"service_api:   seeding {args.service_deployments} deployments,"
                    f" {args.service_deployments * args.service_tasks} tasks",
                    flush=True,
                )
                began = time.perf_counter()
                seed = _seed(args.service_users, args.service_deployments, args.service_tasks)
                seed_seconds = time.perf_counter() - began
                target = _targets()
                (admin,) = _make_clients(1, "admin", admin=True)
                callers = {"admin": admin, "user": (target["userid"], _key_for(target["userid"]))}
                rows = _measure_lists(server.base, app, target, callers, args.service_requests)
                _report_lists(args, seed, seed_seconds, target, rows)
            if server.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited during the run:\n{server.tail()}")
            print(f"service_api: whole run {time.perf_counter() - run_started:.1f} s", flush=True)
        finally:
            if pool is not None:
                pool.stop()
            if server is not None:
                server.stop()
