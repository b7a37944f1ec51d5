"""Provisioning throughput: install commands of a one-step no-op script plan, against bare RQ jobs (the floor).

Ours: N install commands of the plan ``bench`` (one step, ``script: noop.sh``, which runs ``true``),
executed by W ``flask worker`` processes. The floor: the same N as bare RQ jobs that each spawn the
same no-op script (``bare_noop`` below), run by W plain ``rq worker`` processes.

One method for both: everything is enqueued first, then the W worker processes start (not in burst
mode, so their RSS can be read once the work is done); a run lasts from the moment the workers are
started to the last completion (ours: the last command's ``finished_at``; the floor: the last job's
``ended_at`` in RQ). Worker start-up is inside that window; the figures without it (first start to
last completion) are printed as well.

SQL statements are counted in this process, with a ``before_cursor_execute`` listener, on a sample of
further commands issued and executed here exactly as a worker executes them (a fresh session each).

This module's top-level imports are kept light: every bare job of the floor imports it in a fresh
RQ work horse.
"""

import os
import subprocess

NAME = "provisioning"
PLAN = "bench"
SCRIPT = "noop.sh"
FLOOR_QUEUE = "bench-floor"
TARGET_RATIO = 0.6
TARGET_SQL = 20
TARGET_RSS_MB = 150


def bare_noop(script: str) -> None:
    """The floor's job: spawn the same no-op script the plan's step runs."""
    subprocess.run(["/bin/bash", script], check=True)  # noqa: S603 -- a fixed argv, no shell


def add_arguments(parser) -> None:
    parser.add_argument("--commands", type=int, default=500, help="install commands, and bare jobs (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for each run (default 2)")
    parser.add_argument(
        "--database-url",
        help="an EMPTY database to run on (tables are created), e.g. postgresql+psycopg://u:pw@host/db; "
        "default: a fresh SQLite file in a temporary directory",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="run on a throwaway PostgreSQL cluster (needs initdb, as `make test`)"
    )
    parser.add_argument(
        "--sql-sample", type=int, default=50, help="commands issued and executed in-process to count SQL (default 50)"
    )
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for each run to finish (default 600)")


# ---------------------------------------------------------------------------------------------- helpers


def _percentile(values: list[float], pct: int) -> float:
    """The ``pct`` percentile (inclusive method); the value itself for a single one."""
    import statistics

    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def _aware(value):
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in kB; empty when it is gone."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return found


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _mb(kb: int | None) -> float:
    return (kb or 0) / 1024


class Workers:
    """W worker processes, each in a process group of its own, their output in log files.

    A sampler thread records the peak RSS of each worker and of its direct children (RQ's work
    horses) while they run.
    """

    def __init__(self, label: str, argv: list[str], count: int, env: dict, cwd, logdir):
        import threading
        from pathlib import Path

        self.label = label
        self.logs = [Path(logdir) / f"{label}-{index}.log" for index in range(count)]
        self.outs = []
        self.processes = []
        self.peak_child_kb = 0
        self._stop = threading.Event()
        for log in self.logs:
            out = open(log, "w")  # noqa: SIM115 -- closed in stop()
            self.outs.append(out)
            self.processes.append(
                subprocess.Popen(  # noqa: S603 -- our own executables
                    argv,
                    cwd=cwd,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        self._sampler = threading.Thread(target=self._sample, name=f"{label}-rss", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for process in self.processes:
                for child in _children(process.pid):
                    self.peak_child_kb = max(self.peak_child_kb, _status_kb(child).get("VmRSS", 0))

    def check_alive(self) -> None:
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{self.label} worker {process.pid} exited with {process.returncode}:\n{self.tail(log)}"
                )

    @staticmethod
    def tail(log, lines: int = 30) -> str:
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def memory(self) -> list[dict[str, int]]:
        """VmRSS and VmHWM (kB) of each worker's main process, now."""
        return [_status_kb(process.pid) for process in self.processes]

    def stop(self) -> None:
        """SIGTERM each group (RQ's warm shutdown), then SIGKILL whatever is left, work horses included."""
        import contextlib
        import signal

        self._stop.set()
        children = {child for process in self.processes for child in _children(process.pid)}
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(15)
        for child in children:  # work horses run in sessions of their own
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        for out in self.outs:
            out.close()
        self._sampler.join(5)


# ---------------------------------------------------------------------------------------------- set-up


def _setup_app(database_url: str, redis_url: str, tmp):
    from app import create_app
    from config import TestConfig

    return create_app(
        TestConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        REDIS_URL=redis_url,
        INSTANCE_DIR=tmp,
        SCRIPTS_DIR=tmp / "scripts",
    )


def _load_plan(app) -> None:
    from app.extensions import db
    from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

    scripts = app.config["SCRIPTS_DIR"]
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / SCRIPT).write_text("#!/bin/bash\ntrue\n")
    text = f"""
- plan: {PLAN}
  offered: false
  one_per_user: true
  configuration:
    env: {{}}
  steps:
    - script: {SCRIPT}
"""
    apply_specs(parse_specs(text, "bench", scripts, spec_fallbacks(app.config)))
    db.session.commit()


def _make_users(count: int) -> list[int]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import User

    db.session.add_all(User(email=f"bench{index}@example.com", userid=f"bench{index}") for index in range(count))
    db.session.commit()
    ids = list(db.session.scalars(select(User.id).where(User.userid.like("bench%")).order_by(User.id)))
    db.session.remove()
    return ids


def _issue_and_enqueue(user_ids: list[int]) -> tuple[list[int], float]:
    """Issue, commit and enqueue one install command per user, one at a time; (ids, seconds)."""
    import time

    from app.extensions import db
    from app.jobs.provisioning import enqueue_command
    from app.models import User
    from app.ops.commands import issue_command

    ids = []
    started = time.perf_counter()
    for user_id in user_ids:
        user = db.session.get(User, user_id)
        command = issue_command(plan=PLAN, user=user, phase="install", params="", privileged=True)
        db.session.commit()
        ids.append(command.id)
        if not enqueue_command(command.id):
            raise RuntimeError(f"command {command.id} was not enqueued: Redis is unreachable")
    seconds = time.perf_counter() - started
    db.session.remove()
    return ids, seconds


# ---------------------------------------------------------------------------------------------- the runs


def _run_ours(app, ids: list[int], workers: int, wait: float, tmp) -> dict:
    import sys
    import time
    from pathlib import Path

    from rq.registry import FailedJobRegistry
    from sqlalchemy import func, select

    from app.extensions import db
    from app.jobs.queues import PROVISIONING, get_redis
    from app.models import ServiceCommand, Status
    from app.models.types import utcnow
    from tests.processes import ROOT, process_env

    flask = str(Path(sys.executable).parent / "flask")
    final = (Status.COMPLETED, Status.FAILED)
    lo, hi = min(ids), max(ids)
    failed_registry = FailedJobRegistry(PROVISIONING, connection=get_redis())
    start = utcnow()
    pool = Workers("ours", [flask, "worker"], workers, process_env(app), ROOT, tmp)
    try:
        deadline = time.monotonic() + wait
        while True:
            done = db.session.scalar(
                select(func.count())
                .select_from(ServiceCommand)
                .where(ServiceCommand.id.between(lo, hi), ServiceCommand.status.in_(final))
            )
            db.session.rollback()
            if done >= len(ids):
                break
            if failed_registry.count:
                job_ids = failed_registry.get_job_ids()[:3]
                raise RuntimeError(f"RQ jobs failed outside the engine: {job_ids}\n{Workers.tail(pool.logs[0])}")
            pool.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"ours: only {done} of {len(ids)} commands final after {wait:g}s")
            time.sleep(0.1)
        memory = pool.memory()
    finally:
        pool.stop()
    rows = db.session.execute(
        select(
            ServiceCommand.status,
            ServiceCommand.created_at,
            ServiceCommand.started_at,
            ServiceCommand.finished_at,
            ServiceCommand.failure_reason,
            ServiceCommand.failure_detail,
        ).where(ServiceCommand.id.between(lo, hi))
    ).all()
    db.session.remove()
    return {"start": start, "rows": rows, "memory": memory, "peak_child_kb": pool.peak_child_kb}


def _run_floor(
    redis_url: str, script: str, count: int, workers: int, wait: float, tmp, queue_name: str = "", fork: bool = True
) -> dict:
    import sys
    import time
    from pathlib import Path

    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    from app.models.types import utcnow
    from tests.processes import ROOT

    queue_name = queue_name or FLOOR_QUEUE
    connection = Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=connection)
    started = time.perf_counter()
    job_ids = [
        queue.enqueue(f"{__name__}.bare_noop", script, job_timeout=600, result_ttl=3600, failure_ttl=3600).id
        for _ in range(count)
    ]
    enqueue_seconds = time.perf_counter() - started
    finished = FinishedJobRegistry(queue_name, connection=connection)
    failed = FailedJobRegistry(queue_name, connection=connection)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OMEGAOPS_", "FLASK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    rq = str(Path(sys.executable).parent / "rq")
    start = utcnow()
    # our workers run jobs in process (SimpleWorker); the floor is measured both ways
    worker_class = [] if fork else ["--worker-class", "rq.worker.SimpleWorker"]
    pool = Workers(queue_name, [rq, "worker", *worker_class, "--url", redis_url, queue_name], workers, env, ROOT, tmp)
    try:
        deadline = time.monotonic() + wait
        while True:
            done, bad = finished.count, failed.count
            if done + bad >= count:
                break
            pool.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"floor: only {done + bad} of {count} jobs done after {wait:g}s")
            time.sleep(0.1)
        memory = pool.memory()
    finally:
        pool.stop()
    jobs = [job for job in Job.fetch_many(job_ids, connection=connection) if job is not None]
    failures = [job for job in jobs if job.get_status(refresh=False) == "failed"]
    connection.close()
    return {
        "start": start,
        "enqueue_seconds": enqueue_seconds,
        "jobs": [(_aware(job.started_at), _aware(job.ended_at)) for job in jobs if job.ended_at is not None],
        "failed": len(failures),
        "memory": memory,
        "peak_child_kb": pool.peak_child_kb,
    }


def _count_sql(user_ids: list[int]) -> dict:
    """Issue and execute one command per user in this process, counting the SQL of each part."""
    import time
    from collections import Counter

    from sqlalchemy import event

    from app.extensions import db
    from app.models import Status, User
    from app.ops import engine as ops_engine
    from app.ops.commands import issue_command

    counting = {"on": False}
    statements: list[str] = []
    events = Counter()

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if counting["on"]:
            statements.append(" ".join(statement.split()))

    def on_commit(conn):
        if counting["on"]:
            events["commits"] += 1

    def on_checkout(dbapi_connection, record, proxy):
        # with pool_pre_ping each checkout pings the database first: a round trip no statement count shows
        if counting["on"]:
            events["checkouts"] += 1

    sql_engine = db.engine
    listeners = [("before_cursor_execute", on_execute), ("commit", on_commit), ("checkout", on_checkout)]
    for name, listener in listeners:
        event.listen(sql_engine, name, listener)
    try:
        ids = []
        db.session.remove()
        for user_id in user_ids:
            user = db.session.get(User, user_id)  # a request has its user loaded already: not counted
            counting["on"] = True
            command = issue_command(plan=PLAN, user=user, phase="install", params="", privileged=True)
            db.session.commit()
            counting["on"] = False
            ids.append(command.id)
        db.session.remove()
        issue = (list(statements), dict(events))
        statements.clear()
        events.clear()
        outcomes = Counter()
        seconds = []
        for command_id in ids:
            # as a worker's job does: a fresh session for each command
            counting["on"] = True
            started = time.perf_counter()
            status = ops_engine.execute(command_id, worker="bench")
            seconds.append(time.perf_counter() - started)
            counting["on"] = False
            outcomes[status.name if status is not None else "None"] += 1
            db.session.remove()
        execute = (list(statements), dict(events))
    finally:
        counting["on"] = False
        for name, listener in listeners:
            event.remove(sql_engine, name, listener)
    if outcomes[Status.COMPLETED.name] != len(ids):
        raise RuntimeError(f"in-process sample: not every command completed: {dict(outcomes)}")
    return {"count": len(ids), "issue": issue, "execute": execute, "execute_ms": [1000 * s for s in seconds]}


# ---------------------------------------------------------------------------------------------- report


def _rate(jobs: list, start) -> tuple[float, float]:
    last = max(end for _, end in jobs)
    return len(jobs) / (last - start).total_seconds(), len(jobs) / (last - min(b for b, _ in jobs)).total_seconds()


def _report(args, backend: str, issue_seconds: float, ours: dict, floor: dict, sql: dict, floor_nofork: dict) -> None:
    n, w = args.commands, args.workers
    rows = ours["rows"]
    completed = [row for row in rows if row.status.name == "COMPLETED"]
    failed = [row for row in rows if row.status.name != "COMPLETED"]
    last = max(row.finished_at for row in rows)
    ours_wall = (last - ours["start"]).total_seconds()
    ours_steady = (last - min(row.started_at for row in rows if row.started_at)).total_seconds()
    ours_rate, ours_steady_rate = len(rows) / ours_wall, len(rows) / ours_steady
    issued = [(row.finished_at - row.created_at).total_seconds() for row in rows]
    executed = [(row.finished_at - row.started_at).total_seconds() * 1000 for row in rows if row.started_at]

    jobs = floor["jobs"]
    floor_last = max(end for _, end in jobs)
    floor_wall = (floor_last - floor["start"]).total_seconds()
    floor_steady = (floor_last - min(begin for begin, _ in jobs)).total_seconds()
    floor_rate, floor_steady_rate = len(jobs) / floor_wall, len(jobs) / floor_steady
    floor_exec = [(end - begin).total_seconds() * 1000 for begin, end in jobs]
    ratio, steady_ratio = ours_rate / floor_rate, ours_steady_rate / floor_steady_rate

    k = sql["count"]
    issue_sql, exec_sql = len(sql["issue"][0]) / k, len(sql["execute"][0]) / k

    def per_command(part: str, name: str) -> float:
        return sql[part][1].get(name, 0) / k

    rss = [_mb(m.get("VmRSS")) for m in ours["memory"]]
    hwm = [_mb(m.get("VmHWM")) for m in ours["memory"]]
    floor_rss = [_mb(m.get("VmRSS")) for m in floor["memory"]]
    rss_max = max(rss) if rss else float("nan")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    lines = [
        f"provisioning: {n} commands, {w} workers, {backend}",
        f"  method: all {n} enqueued first, then {w} worker processes (not burst) start; a run lasts from their",
        "    start to the last completion (ours: max finished_at; floor: max RQ ended_at); 'steady' leaves out",
        "    worker start-up (first job start -> last completion)",
        f"  issue+enqueue: {issue_seconds:.2f} s ({n / issue_seconds:.0f} commands/s; issue_command + commit +"
        " enqueue_command, one at a time)",
        f"  ours: {ours_rate:.1f} commands/s ({len(rows)} in {ours_wall:.2f} s; steady {ours_steady_rate:.1f}/s"
        f" over {ours_steady:.2f} s); {len(completed)} COMPLETED, {len(failed)} FAILED",
        f"    issue->completed p50 {_percentile(issued, 50):.2f} s, p95 {_percentile(issued, 95):.2f} s"
        " (includes queueing: all were issued before the workers started)",
        f"    start->completed p50 {_percentile(executed, 50):.0f} ms, p95 {_percentile(executed, 95):.0f} ms"
        " (claim to finish, one command)",
        f"  floor (bare RQ + subprocess): {floor_rate:.1f} jobs/s ({len(jobs)} in {floor_wall:.2f} s;"
        f" steady {floor_steady_rate:.1f}/s over {floor_steady:.2f} s); {floor['failed']} failed",
        f"    job start->end p50 {_percentile(floor_exec, 50):.0f} ms, p95 {_percentile(floor_exec, 95):.0f} ms;"
        f" enqueue {floor['enqueue_seconds']:.2f} s",
        f"  ratio ours/floor: {ratio:.2f} (target >= {TARGET_RATIO}); steady: {steady_ratio:.2f}",
        "  floor without fork (rq SimpleWorker, as our workers run): {:.1f} jobs/s (steady {:.1f}/s);"
        " ratio ours/that: {:.2f} (steady {:.2f})".format(
            *_rate(floor_nofork["jobs"], floor_nofork["start"]),
            ours_rate / _rate(floor_nofork["jobs"], floor_nofork["start"])[0],
            ours_steady_rate / _rate(floor_nofork["jobs"], floor_nofork["start"])[1],
        ),
        f"  SQL statements per command: execute {exec_sql:.1f}, issue {issue_sql:.1f}, together"
        f" {exec_sql + issue_sql:.1f} (target <= {TARGET_SQL}; in-process sample of {k})",
        f"    besides: commits execute {per_command('execute', 'commits'):.1f}, issue"
        f" {per_command('issue', 'commits'):.1f}; pool checkouts (a pre-ping round trip each) execute"
        f" {per_command('execute', 'checkouts'):.1f}, issue {per_command('issue', 'checkouts'):.1f}",
        f"  in-process execute (one process, no other worker): p50 {_percentile(sql['execute_ms'], 50):.0f} ms,"
        f" p95 {_percentile(sql['execute_ms'], 95):.0f} ms per command",
        f"  worker RSS after the run: {rss_max:.0f} MB (target <= {TARGET_RSS_MB}; each: "
        + ", ".join(f"{value:.0f}" for value in rss)
        + " MB; peak "
        + ", ".join(f"{value:.0f}" for value in hwm)
        + f" MB; work horse peak {_mb(ours['peak_child_kb']):.0f} MB); floor workers: "
        + ", ".join(f"{value:.0f}" for value in floor_rss)
        + f" MB, horse peak {_mb(floor['peak_child_kb']):.0f} MB",
        "  targets:",
        f"    {verdict(ratio >= TARGET_RATIO)}  throughput >= {TARGET_RATIO} x floor ({ratio:.2f}; steady"
        f" {steady_ratio:.2f})",
        f"    {verdict(exec_sql <= TARGET_SQL)}  SQL statements per command, execute <= {TARGET_SQL} ({exec_sql:.1f})",
        f"    {verdict(exec_sql + issue_sql <= TARGET_SQL)}  SQL statements per command, issue + execute"
        f" <= {TARGET_SQL} ({exec_sql + issue_sql:.1f})",
        f"    {verdict(rss_max <= TARGET_RSS_MB)}  worker RSS after the run <= {TARGET_RSS_MB} MB ({rss_max:.0f} MB)",
    ]
    if failed:
        reasons = {}
        for row in failed:
            key = f"{row.status.name} {row.failure_reason}: {(row.failure_detail or '')[:100]}"
            reasons[key] = reasons.get(key, 0) + 1
        lines.append("  failed commands:")
        lines += [f"    {count} x {reason}" for reason, count in sorted(reasons.items(), key=lambda i: -i[1])]
    for part in ("execute", "issue"):
        lines.append(f"  SQL per command by statement ({part}; first 60 characters):")
        lines += _breakdown(sql[part][0], k)
    print("\n".join(lines), flush=True)


def _breakdown(statements: list[str], k: int) -> list[str]:
    from collections import Counter

    counts = Counter(statement[:60] for statement in statements)
    return [f"    {count / k:5.2f}  {text}" for text, count in counts.most_common()]


# ---------------------------------------------------------------------------------------------- entry


def run(args) -> None:
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.servers import PostgresServer, RedisServer

    if args.commands < 1 or args.workers < 1 or args.sql_sample < 1:
        raise ValueError("--commands, --workers and --sql-sample must be at least 1")
    tmp = Path(tempfile.mkdtemp(prefix="omegaops-bench-"))
    redis = postgres = app = None
    context = None
    try:
        redis = RedisServer()
        if args.database_url:
            database_url = args.database_url
        elif args.postgres:
            postgres = PostgresServer()
            database_url = postgres.create_database("bench")
        else:
            database_url = f"sqlite:///{tmp / 'bench.db'}"
        app = _setup_app(database_url, redis.url, tmp)
        backend = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0].split("+", 1)[0]
        print(f"provisioning: setting up ({args.commands} commands, {args.workers} workers, {backend})", flush=True)
        context = app.app_context()
        context.push()
        from app.extensions import db

        db.create_all()
        _load_plan(app)
        user_ids = _make_users(args.commands + args.sql_sample)
        ids, issue_seconds = _issue_and_enqueue(user_ids[: args.commands])
        ours = _run_ours(app, ids, args.workers, args.wait, tmp)
        script = str(app.config["SCRIPTS_DIR"] / SCRIPT)
        floor = _run_floor(redis.url, script, args.commands, args.workers, args.wait, tmp)
        floor_nofork = _run_floor(
            redis.url,
            script,
            args.commands,
            args.workers,
            args.wait,
            tmp,
            queue_name=FLOOR_QUEUE + "-nofork",
            fork=False,
        )
        sql = _count_sql(user_ids[args.commands :])
        _report(args, backend, issue_seconds, ours, floor, sql, floor_nofork)
    finally:
        teardown(context, redis, postgres, tmp)


def teardown(context, redis, postgres, tmp) -> None:
    """Undo a benchmark's set-up, whatever part of it was reached (None: not started)."""
    import shutil

    if context is not None:
        from app.extensions import db

        db.session.remove()
        db.engine.dispose()
        context.pop()
    if redis is not None:
        redis.stop()
    if postgres is not None:
        postgres.stop()
    shutil.rmtree(tmp, ignore_errors=True)
