"""Usage ingest: a JSON-lines log of E events through ``ingest_path``, re-ingested, then rolled up.

SQLite, or PostgreSQL with ``--postgres`` (a throwaway cluster, fsync off as in the tests): a fresh database
migrated with ``flask db upgrade``, N users (default 1,000) and one plan whose spec (``metrics:``) has the
metrics of the usage tests (requests: count, bytes: sum, peak: max, resources: unique
``data.request_resource_name``, busy seconds: duration). A file of E events (default 1,000,000) in the
events format of ``app/usage/events.py`` is written streaming to a temporary directory, without ``id``
(``logfiles.line_id``: the line's start time and hash): ``start_dt`` spread over the current UTC month up to
now in log order (each up to 5 s before its place: a line is written when its request ends), ``end_dt`` 5 ms
to 5 s later, a seeded user, kind ``api``, action ``request``.

Each ingest runs ``ingest_path(path)`` in a child process of its own (``python -c``, the app built as here):
its wall time around ``ingest_path``, its CPU seconds (user + sys, one core: the ingest is one thread) and
its peak RSS (``ru_maxrss``; the RSS after start-up, before the ingest, is printed beside it). On
PostgreSQL the server's CPU seconds in the same interval are read from /proc (the postmaster, its live
children, and the backends it reaped). 1. the first run; 2. the same file again: the checkpoint, nothing
read; 3. the checkpoint row deleted, the file again: every line a duplicate (by id). Then ``rollup`` of the
month so far, twice: the rows of both runs must be the same.

``--usage-profile``: on a second file of ``--usage-profile-events`` (default 100,000), in this process:
the ingest's parts timed one by one (read lines, the JSON parser ``logfiles`` uses, sha256, ``to_row``, its
insert, rolled back), then the same rows inserted in each way ``app/usage/events.py`` has (``insert_rows``:
ORM bulk with RETURNING; ``insert_many``: executemany / COPY) and with SQLAlchemy Core executemany, each
rolled back, then ``ingest_path`` under cProfile: the top 25 functions by cumulative time and the top 15 by
own time.
"""

import json
import os
import subprocess
import sys
import time

NAME = "usage"
TARGET = 50_000  # events/s on one core: the issue asks for 5 x Lago's published figure
LAGO = 10_000  # events/s on one PostgreSQL, as Lago publishes it
PLAN = "bench-usage"
METRICS = [
    ("requests", "api", "request", "count", None),
    ("bytes", "api", "request", "sum", None),
    ("peak", "api", "request", "max", None),
    ("resources", "api", "request", "unique", "request_resource_name"),
    ("busy seconds", "api", None, "duration", None),
]
RESOURCES = ["config", "dataset", "model", "job", "script", "runtime", "service", "command", "task", "key"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]

# the child that ingests: its own figures around ingest_path, as one JSON line
CHILD = """
import json, resource, sys, time
from pathlib import Path
spec = json.loads(sys.argv[1])
from app import create_app
from app.usage.logfiles import ingest_path
from config import TestConfig
app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=spec["url"], REDIS_URL=spec["redis"],
                 INSTANCE_DIR=Path(spec["tmp"]), SCRIPTS_DIR=Path(spec["tmp"]) / "scripts")
with app.app_context():
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    report = ingest_path(spec["path"], spec["batch"])
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "user": after.ru_utime - before.ru_utime,
                  "sys": after.ru_stime - before.ru_stime,
                  "rss_before_mb": before.ru_maxrss / 1024, "rss_peak_mb": after.ru_maxrss / 1024,
                  "report": {k: v for k, v in report.__dict__.items() if k not in ("errors", "files")},
                  "errors": report.errors[:5]}))
"""


def add_arguments(parser) -> None:
    parser.add_argument("--usage-users", type=int, default=1000, help="seeded users (default 1000)")
    parser.add_argument("--usage-events", type=int, default=1_000_000, help="events in the log file (default 1000000)")
    parser.add_argument(
        "--usage-batch", type=int, default=None, help="events per transaction (default: ingest_path's, BATCH)"
    )
    parser.add_argument(
        "--usage-profile",
        action="store_true",
        help="also: the ingest's parts timed, other inserts tried, and a cProfile of an in-process ingest",
    )
    parser.add_argument(
        "--usage-profile-events", type=int, default=100_000, help="events of the profiled file (default 100000)"
    )
    # --postgres is shared: the provisioning benchmark defines it (read with getattr(args, "postgres", False)).


# ---------------------------------------------------------------------------------------------- set-up


def _seed(users: int) -> list[str]:
    """``users`` users (bulk inserted) and the plan with its metrics; the userids."""
    from flask import current_app
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import User
    from app.models.types import utcnow
    from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

    spec = f"""
- plan: {PLAN}
  title: usage bench
  offered: true
  one_per_user: false
  configuration:
    env: {{}}
  steps:
    - task: app.ops.tasks.deploy_user_service
      params: ""
      phases: [install, update]
  metrics:
"""
    for name, kind, action, aggregation, field in METRICS:
        extra = (f", action: {action}" if action else "") + (f", field: {field}" if field else "")
        spec += f"    - {{name: {name}, kind: {kind}, aggregation: {aggregation}{extra}}}\n"
    config = current_app.config
    apply_specs(parse_specs(spec, "bench", config["SCRIPTS_DIR"], spec_fallbacks(config)))
    db.session.commit()
    now = utcnow()
    userids = [f"usage{index:06d}" for index in range(users)]
    rows = [
        {
            "email": f"{userid}@bench.example.com",
            "userid": userid,
            "first_name": "Bench",
            "last_name": userid,
            "password_hash": None,
            "active": True,
            "admin": False,
            "email_confirmed_at": now,
            "created_at": now,
        }
        for userid in userids
    ]
    db.session.execute(insert(User), rows)
    db.session.commit()
    db.session.remove()
    return userids


def _generate(path, count: int, userids: list[str], now, seed: int = 1, prefix: str = "") -> float:
    """Write ``count`` events as JSON lines (no id); the seconds it took."""
    import random
    from datetime import timedelta

    began = time.perf_counter()
    rng = random.Random(seed)  # noqa: S311 -- test data, not secrets
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(1, int((now - month).total_seconds() * 1_000_000) - 1)
    dumps = json.dumps
    with open(path, "w", encoding="utf-8", buffering=1 << 20) as handle:
        chunk = []
        for index in range(count):
            # a log is written as requests end: in time order, give or take a request's few seconds
            start = month + timedelta(microseconds=max(0, index * span // count - rng.randrange(5_000_000)))
            resource = rng.choice(RESOURCES)
            event = {
                "start_dt": start.isoformat(),
                "end_dt": (start + timedelta(microseconds=rng.randrange(5_000, 5_000_000))).isoformat(),
                "user": rng.choice(userids),
                "kind": "api",
                "action": "request",
                "client_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "quantity": rng.randrange(100, 100_000),
                "data": {
                    "request_uri": f"/api/v1/{resource}/{prefix}{index}",
                    "request_method": rng.choice(METHODS),
                    "request_resource_name": resource,
                },
            }
            chunk.append(dumps(event))
            if len(chunk) == 10_000:
                handle.write("\n".join(chunk) + "\n")
                chunk = []
        if chunk:
            handle.write("\n".join(chunk) + "\n")
    return time.perf_counter() - began


def _server_cpu(postgres) -> float | None:
    """CPU seconds of the PostgreSQL cluster so far: the postmaster, its children, the backends it reaped."""
    if postgres is None:
        return None
    try:
        postmaster = int((postgres.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (field 3 of proc(5)): ppid 4, utime 14, stime 15, cutime 16, cstime 17
        if int(entry) == postmaster:
            total += sum(int(value) for value in fields[11:15])
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _ingest_child(spec: dict, env: dict, root, postgres) -> dict:
    """``ingest_path`` in a child process: its figures, the server's CPU and the child's whole rusage."""
    import resource

    server_before = _server_cpu(postgres)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", CHILD, json.dumps(spec)], cwd=root, env=env, capture_output=True, text=True
    )
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = _server_cpu(postgres)
    if done.returncode != 0:
        raise RuntimeError(f"the ingest child failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu"] = None if server_before is None else server_after - server_before
    result["child_cpu_whole"] = (
        children_after.ru_utime - children_before.ru_utime + children_after.ru_stime - children_before.ru_stime
    )
    result["child_maxrss_mb"] = children_after.ru_maxrss / 1024  # the largest child so far (Linux: KiB)
    return result


def _daily_rows() -> list[tuple]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import UsageDaily

    rows = db.session.execute(
        select(UsageDaily.user_id, UsageDaily.plan_id, UsageDaily.metric_id, UsageDaily.day, UsageDaily.value)
    ).all()
    return sorted(tuple(row) for row in rows)


# ---------------------------------------------------------------------------------------------- profile


def _what_ifs(rows: list[dict], batch: int) -> list[tuple[str, float, int]]:
    """Ways to insert the same rows, each in a transaction rolled back: (name, seconds, inserted)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from app.extensions import db
    from app.models import UsageEvent
    from app.usage import events

    batches = [rows[start : start + batch] for start in range(0, len(rows), batch)]
    postgres = db.session.get_bind().dialect.name == "postgresql"
    statement = (pg_insert if postgres else sqlite_insert)(UsageEvent).on_conflict_do_nothing(index_elements=["id"])
    ways = [
        (
            "insert_rows: ORM bulk, ON CONFLICT DO NOTHING RETURNING id (insertmanyvalues)",
            lambda part: len(events.insert_rows(part)),
        ),
        (
            "SQLAlchemy Core executemany, ON CONFLICT DO NOTHING, no RETURNING",
            lambda part: db.session.connection().execute(statement, part).rowcount,
        ),
    ]
    if hasattr(events, "insert_many"):
        bulk = "COPY (straight in, else via a temp table)" if postgres else "sqlite3 executemany"
        ways.append((f"insert_many: {bulk}, ON CONFLICT DO NOTHING", events.insert_many))
    results = []
    for name, insert in ways:
        began = time.perf_counter()
        inserted = sum(insert(part) for part in batches)
        results.append((name, time.perf_counter() - began, inserted))
        db.session.rollback()
    return results


def _best(call) -> tuple[float, object]:
    """The shorter time of two runs of ``call`` (the first pays for the allocator's warm-up), and its result."""
    times = []
    for _ in range(2):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    return min(times), result


def _short_path(filename: str, root) -> str:
    for base in (str(root) + "/", "site-packages/", "lib/python3.11/"):
        if base in filename:
            return filename.split(base, 1)[1]
    return filename


def _profile(path, count: int, batch: int, root) -> None:
    """The ingest's parts timed one by one, other inserts, then ``ingest_path`` under cProfile."""
    import cProfile
    import pstats

    from app.extensions import db
    from app.models import Source
    from app.models.types import utcnow
    from app.usage import events as module
    from app.usage import logfiles
    from app.usage.events import Resolver, open_period_start, to_row
    from app.usage.logfiles import ingest_path

    # the JSON parser and the insert the ingest uses (orjson and insert_many where it has them)
    parser = getattr(logfiles, "orjson", json)
    insert = getattr(logfiles, "insert_many", None) or (lambda rows: len(module.insert_rows(rows)))
    insert_name = "insert_many" if hasattr(logfiles, "insert_many") else "insert_rows"
    parts = []
    began = time.perf_counter()
    with open(path, "rb") as handle:
        lines = [line.strip() for line in handle]
    parts.append(("read and strip the lines", time.perf_counter() - began))
    stdlib, events = _best(lambda: [json.loads(line) for line in lines])
    seconds, events = _best(lambda: [parser.loads(line) for line in lines])
    parts.append((f"{parser.__name__}.loads (the better of 2 runs)", seconds))
    began = time.perf_counter()
    for line, event in zip(lines, events, strict=True):
        event["id"] = logfiles.line_id(line, event.get("start_dt"))
    parts.append(("line_id: start time + sha256 of the line", time.perf_counter() - began))
    now = utcnow()
    resolver = Resolver()
    began = time.perf_counter()
    resolver.prefetch(events)
    parts.append(("Resolver.prefetch (users)", time.perf_counter() - began))
    cutoff = open_period_start(now)
    began = time.perf_counter()
    rows = [to_row(event, Source.LOG.value, resolver, now, cutoff) for event in events]
    parts.append(("to_row (validate, parse times, build the row)", time.perf_counter() - began))
    began = time.perf_counter()
    for start in range(0, len(rows), batch):
        insert(rows[start : start + batch])
    parts.append((f"{insert_name} in batches of {batch:,} (rolled back: no commit)", time.perf_counter() - began))
    db.session.rollback()
    total = sum(seconds for _, seconds in parts)
    out = [f"usage: profile: {count:,} events in this process, the ingest's parts one by one (no profiler)"]
    for name, seconds in parts:
        out.append(
            f"  {name:<58} {seconds:7.2f} s {1e6 * seconds / count:7.1f} us/event {100 * seconds / total:5.1f} %"
        )
    out.append(f"  {'all':<58} {total:7.2f} s {1e6 * total / count:7.1f} us/event -> {count / total:,.0f} events/s")
    if parser is not json:
        out.append(f"  (for comparison, the stdlib's json.loads: {1e6 * stdlib / count:.1f} us/event)")
    out.append("usage: profile: the same rows inserted in other ways (each in a transaction rolled back)")
    for name, seconds, inserted in _what_ifs(rows, batch):
        done = f"{inserted:,} inserted" if inserted >= 0 else "(the driver reports no rowcount)"
        out.append(f"  {name:<84} {seconds:6.2f} s {1e6 * seconds / count:6.1f} us/event  {done}")
    print("\n".join(out), flush=True)
    rows = events = lines = None  # freed before the profiled run

    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    report = ingest_path(str(path), batch)
    profiler.disable()
    seconds = time.perf_counter() - began
    stats = pstats.Stats(profiler)
    entries = [(key, value) for key, value in stats.stats.items()]  # (file, line, name): (cc, nc, tt, ct, callers)
    out = [
        f"usage: profile: ingest_path of {count:,} events under cProfile: {seconds:.2f} s"
        f" ({report.inserted:,} new, {report.duplicates:,} duplicates, {report.malformed:,} malformed)",
        f"  top 25 by cumulative time:  {'calls':>10} {'own s':>7} {'cum s':>7}",
    ]
    for by, top in ((3, 25), (2, 15)):
        if by == 2:
            out.append(f"  top 15 by own time:  {'calls':>18} {'own s':>7} {'cum s':>7}")
        for (filename, line, name), (_, calls, own, cumulative, _) in sorted(entries, key=lambda e: -e[1][by])[:top]:
            where = f"{_short_path(filename, root)}:{line}({name})" if line else name
            out.append(f"    {where[:100]:<100} {calls:>10,} {own:7.2f} {cumulative:7.2f}")
    print("\n".join(out), flush=True)


# ---------------------------------------------------------------------------------------------- entry


def run(args) -> None:
    from bench.setup_app import bench_app, project_root

    project_root()
    from app.usage.logfiles import BATCH

    batch = args.usage_batch or BATCH
    if min(args.usage_users, args.usage_events, batch, args.usage_profile_events) < 1:
        raise ValueError("--usage-users, -events, -batch and -profile-events must be at least 1")
    run_started = time.perf_counter()
    with bench_app("usage", "usage", getattr(args, "postgres", False)) as setup:
        from sqlalchemy import delete, func, select

        from app.extensions import db
        from app.models import UsageCheckpoint, UsageDaily, UsageEvent
        from app.models.types import utcnow
        from app.usage.rollup import rollup

        root, tmp, env, postgres, backend = setup.root, setup.tmp, setup.env, setup.postgres, setup.backend
        database_url, redis = setup.database_url, setup.redis
        userids = _seed(args.usage_users)

        count = args.usage_events
        path = tmp / "events.log"
        now = utcnow()
        print(f"usage:   writing {count:,} events of {len(userids):,} users to {path}", flush=True)
        generate_seconds = _generate(path, count, userids, now)
        size_mb = path.stat().st_size / 1e6
        print(
            f"usage:   written in {generate_seconds:.1f} s ({count / generate_seconds:,.0f} lines/s),"
            f" {size_mb:,.1f} MB ({path.stat().st_size / count:.0f} bytes a line)",
            flush=True,
        )

        spec = {
            "url": database_url,
            "redis": redis.url,
            "tmp": str(tmp),
            "path": str(path),
            "batch": batch,
        }
        runs = {}
        for label in ("first ingest", "again: the checkpoint", "checkpoint deleted: duplicates"):
            if label.startswith("checkpoint deleted"):
                db.session.execute(delete(UsageCheckpoint).where(UsageCheckpoint.name == str(path.resolve())))
                db.session.commit()
            db.session.remove()  # no transaction open while the child writes (SQLite)
            print(f"usage:   {label} (a child process)", flush=True)
            runs[label] = _ingest_child(spec, env, root, postgres)
            result = runs[label]
            print(f"usage:     {result['seconds']:.1f} s: {result['report']}", flush=True)
            for error in result["errors"]:
                print(f"usage:     malformed: {error}", flush=True)
        stored = db.session.scalar(select(func.count()).select_from(UsageEvent))

        first_day, today = now.date().replace(day=1), utcnow().date()
        rollups = []
        for _ in range(2):
            began = time.perf_counter()
            done = rollup(start=first_day, end=today, now=utcnow())
            rollups.append((time.perf_counter() - began, done, _daily_rows()))
            print(f"usage:   rollup {first_day}..{today}: {rollups[-1][0]:.1f} s, {done}", flush=True)
        daily = db.session.scalar(select(func.count()).select_from(UsageDaily))
        db.session.remove()

        checks = []
        first, again, dupes = runs.values()
        if first["report"]["inserted"] != count or first["report"]["malformed"] or stored != count:
            checks.append(f"first ingest: {first['report']['inserted']:,} new, {stored:,} stored, not {count:,}")
        if again["report"]["read"] or again["report"]["inserted"]:
            checks.append(f"again: read {again['report']['read']:,} lines, {again['report']['inserted']:,} new")
        if dupes["report"]["inserted"] or dupes["report"]["duplicates"] != count:
            checks.append(
                f"duplicates: {dupes['report']['inserted']:,} new, {dupes['report']['duplicates']:,} duplicates"
            )
        if rollups[0][2] != rollups[1][2]:
            checks.append("rollup: the second run's rows differ from the first's")
        if not rollups[0][2]:
            checks.append("rollup: no rows")

        lines = [
            "",
            f"usage: summary, {backend}: {count:,} events ({size_mb:,.0f} MB) of {len(userids):,} users,"
            f" batches of {batch:,}; ingest in a child process: wall time around ingest_path, the"
            " child's CPU (user+sys, one core), its peak RSS"
            + (", the PostgreSQL server's CPU in the same interval" if postgres else ""),
            f"  {'step':<34} {'seconds':>8} {'events/s':>10} {'CPU s':>7} {'ev/CPU-s':>10} {'server s':>8}"
            f" {'RSS MB':>13}  result",
            f"  {'generate the file':<34} {generate_seconds:8.1f} {count / generate_seconds:10,.0f} {'':>7} {'':>10}"
            f" {'':>8} {'':>13}  {size_mb:,.1f} MB",
        ]
        for label, result in runs.items():
            cpu = result["user"] + result["sys"]
            server = "-" if result["server_cpu"] is None else f"{result['server_cpu']:.1f}"
            report = result["report"]
            rss = f"{result['rss_before_mb']:.0f}->{result['rss_peak_mb']:.0f}"
            read = report["read"]
            rate = f"{read / result['seconds']:,.0f}" if read else "-"
            per_cpu = f"{read / max(cpu, 1e-9):,.0f}" if read else "-"
            lines.append(
                f"  {label:<34} {result['seconds']:8.2f} {rate:>10} {cpu:7.1f}"
                f" {per_cpu:>10} {server:>8} {rss:>13}  read {report['read']:,},"
                f" new {report['inserted']:,}, duplicates {report['duplicates']:,}, malformed {report['malformed']:,}"
            )
        for index, (seconds, done, rows) in enumerate(rollups):
            lines.append(
                f"  {'rollup' + (' again' if index else '') + ' of the month':<34} {seconds:8.2f} {'':>10} {'':>7}"
                f" {'':>10} {'':>8} {'':>13}  {done['rows']:,} rows ({done['days']})"
                + (", identical" if index and rows == rollups[0][2] else "")
            )
        cpu = first["user"] + first["sys"]
        wall_rate, cpu_rate = count / first["seconds"], count / max(cpu, 1e-9)
        lines += [
            f"  usage_daily: {daily:,} rows ({len(METRICS)} metrics x users x days);"
            f" the first ingest's child: {first['child_cpu_whole']:.1f} CPU s with start-up,"
            f" peak RSS {first['child_maxrss_mb']:.0f} MB (getrusage RUSAGE_CHILDREN)",
            f"  target: {TARGET:,} events/s on one core (5 x Lago's {LAGO:,}/s): first ingest {wall_rate:,.0f}"
            f" events/s wall ({wall_rate / TARGET:.2f} x target, {wall_rate / LAGO:.1f} x Lago),"
            f" {cpu_rate:,.0f} events per CPU-second of the ingest process ({cpu_rate / TARGET:.2f} x target):"
            f" {'MET' if wall_rate >= TARGET else 'NOT MET'}",
            f"  checks: {'all passed' if not checks else 'FAILED: ' + '; '.join(checks)};"
            f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work on the machine skews these)",
        ]
        print("\n".join(lines), flush=True)

        if args.usage_profile:
            small = tmp / "profile.log"
            seconds = _generate(small, args.usage_profile_events, userids, utcnow(), seed=2, prefix="p")
            print(f"usage: profile: {args.usage_profile_events:,} new events written in {seconds:.1f} s", flush=True)
            _profile(small, args.usage_profile_events, batch, root)
            db.session.remove()
        print(f"usage: whole run {time.perf_counter() - run_started:.1f} s", flush=True)
        if checks:
            raise RuntimeError("usage: checks failed: " + "; ".join(checks))
