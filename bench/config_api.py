"""Client configuration: GET /api/v1/config/ under gunicorn (2 sync workers), against GET /healthz (the floor).

The hottest endpoint of the service: every ``import omegaml``, every ``om`` command and every task a
runtime worker runs calls it. Set-up: a fresh database (SQLite in a temporary directory, or with
``--postgres`` a throwaway PostgreSQL cluster) migrated with ``flask db upgrade``, the shipped
``omegaml`` plan (``services/omegaml.yaml``), and N users, each with an API key and a COMPLETED
``omegaml`` deployment whose settings hold a ``default`` qualifier shaped as the install task writes
it (bulk inserted). Then ``gunicorn -w 2 'wsgi:app'`` with ``OMEGAOPS_ENV=production`` (the rate
limiter stays on, as in production: this endpoint has no limit of its own, only bad keys are counted).

Load: ``wrk`` on 127.0.0.1 with C connections; a generated Lua script rotates over the
``Authorization: ApiKey <userid>:<key>`` headers of K distinct users (``Qualifier: default``). Each
endpoint gets a warm-up run, then a measured run. The floor is ``GET /healthz`` of the same app under
the same gunicorn, hit with the same requests (same headers), so the difference is what the config
endpoint does: authenticate, load the deployment, build the answer.

The measured config run is the steady state of keys in use: a key is marked used (an UPDATE and a
COMMIT) at most once a minute, so all keys are marked just before it, as they are when their users
call all the time. A third run, informational, rotates over K other users whose keys were never used:
every request is a key's first use and writes.

PostgreSQL tables are ANALYZEd after the bulk load (autovacuum does so within a minute in production);
SQLite is left as deployed, without statistics (it gathers none unless told to).

One request is checked for the contract's shape before the load, and a sample of the rotated users
after it; wrk's error counters (sockets, timeouts, HTTP status >= 400) are printed.
"""

import os
import subprocess

NAME = "config_api"
QUALIFIER = "default"
TARGET_RATIO = 0.5
TARGET_P99_MS = 30.0
PLAN_DEFAULTS = {"OMEGA_CELERY_CONFIG": {"CELERY_DEFAULT_QUEUE": "default", "BROKER_HEARTBEAT": 0}}


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=10000, help="users with a key and an omegaml service (10000)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent wrk connections (default 32)")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measured wrk run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the warm-up run before each (default 2)")
    parser.add_argument(
        "--rotate", type=int, default=1000, help="distinct users whose keys the load rotates over (default 1000)"
    )
    parser.add_argument("--gunicorn-workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    # --postgres is shared: the provisioning benchmark defines it, and argparse refuses a second definition.
    # This module reads it with getattr(args, "postgres", False).


# ---------------------------------------------------------------------------------------------- set-up


def _ensure_wrk() -> str:
    import shutil

    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("config_api: installing wrk (apt-get install -y wrk)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:  # noqa: S603
            update = ["apt-get", "update", "-qq"]
            subprocess.run(update, env=env, check=True, capture_output=True)  # noqa: S603
            subprocess.run(install, env=env, check=True, capture_output=True)  # noqa: S603
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed: sudo apt-get install wrk")
    return found


def _server_env(database_url: str, redis_url: str, tmp) -> dict[str, str]:
    import secrets
    import sys
    from pathlib import Path

    env = {key: value for key, value in os.environ.items() if not key.startswith(("OMEGAOPS_", "FLASK_"))}
    env.update(
        FLASK_APP="wsgi",
        OMEGAOPS_ENV="production",
        OMEGAOPS_SECRET_KEY=secrets.token_hex(32),
        OMEGAOPS_DATABASE_URL=database_url,
        OMEGAOPS_REDIS_URL=redis_url,
        OMEGAOPS_INSTANCE_DIR=str(tmp),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")]),
    )
    return env


def _migrate(env: dict, root) -> None:
    import sys
    from pathlib import Path

    flask = str(Path(sys.executable).parent / "flask")
    done = subprocess.run([flask, "db", "upgrade"], cwd=root, env=env, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}{done.stderr}")


def _populate(app, count: int, root) -> list[tuple[str, str]]:
    """The omegaml plan and ``count`` users with a key and a COMPLETED deployment; (userid, key) of each."""
    import secrets

    from sqlalchemy import insert, select

    from app.accounts import hash_key
    from app.extensions import db
    from app.models import ApiKey, ServiceConfiguration, ServiceDeployment, ServicePlan, Status, User
    from app.models.types import utcnow
    from app.ops.specs import apply_specs, load_spec_files, spec_fallbacks

    apply_specs(
        load_spec_files([root / "services" / "omegaml.yaml"], app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
    )
    plan = ServicePlan.by_name("omegaml")
    plan.defaults = PLAN_DEFAULTS
    db.session.commit()
    configuration_id = db.session.scalar(
        select(ServiceConfiguration.id)
        .where(ServiceConfiguration.plan_id == plan.id)
        .order_by(ServiceConfiguration.version.desc())
        .limit(1)
    )
    plan_id = plan.id

    now = utcnow()
    userids = [f"cfg{index:05d}" for index in range(count)]
    db.session.execute(
        insert(User),
        [
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
        ],
    )
    ids = dict(db.session.execute(select(User.userid, User.id).where(User.userid.like("cfg%"))).tuples().all())
    keys = {userid: secrets.token_hex(20) for userid in userids}
    db.session.execute(
        insert(ApiKey),
        [
            {
                "user_id": ids[userid],
                "name": "bench",
                "key_hash": hash_key(keys[userid]),
                "prefix": keys[userid][:8],
                "created_at": now,
            }
            for userid in userids
        ],
    )

    def settings(userid: str) -> dict:
        # the shape app.ops.tasks.deploy_user_service writes
        password = secrets.token_urlsafe(18)
        return {
            QUALIFIER: {
                "OMEGA_MONGO_URL": f"mongodb://{userid}:{password}@mongodb.bench.internal:27017/{userid}",
                "OMEGA_CELERY_CONFIG": {
                    "BROKER_URL": f"amqp://{userid}:{password}@rabbitmq.bench.internal:5672/{userid}",
                    "CELERY_DEFAULT_QUEUE": "default",
                },
                "OMEGA_MONGO_SSL_KWARGS": {"tls": False},
                "OMEGA_USESSL": False,
                "OMEGA_USERID": userid,
                "OMEGA_QUALIFIER": QUALIFIER,
            }
        }

    db.session.execute(
        insert(ServiceDeployment),
        [
            {
                "user_id": ids[userid],
                "plan_id": plan_id,
                "configuration_id": configuration_id,
                "settings": settings(userid),
                "params": {},
                "text": "",
                "health": "healthy",
                "status": int(Status.COMPLETED),  # 5
                "created_at": now,
                "updated_at": now,
            }
            for userid in userids
        ],
    )
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # what autovacuum does within a minute of a bulk load in production; SQLite gathers no statistics
        # by itself (only ANALYZE or PRAGMA optimize do), so it is measured as deployed
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    return [(userid, keys[userid]) for userid in userids]


def _mark_keys_used(database_url: str, userids: list[str]) -> None:
    """Mark these users' keys used now, as in steady state: a key in use is marked at most once a minute."""
    from sqlalchemy import create_engine, select, update

    from app.models import ApiKey, User
    from app.models.types import utcnow

    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            users = select(User.id).where(User.userid.in_(userids)).scalar_subquery()
            connection.execute(update(ApiKey).where(ApiKey.user_id.in_(users)).values(last_used_at=utcnow()))
    finally:
        engine.dispose()


class Gunicorn:
    """``gunicorn -w W -b 127.0.0.1:PORT wsgi:app`` in a process group of its own, its output in a log file."""

    def __init__(self, env: dict, root, tmp, workers: int):
        import sys
        from pathlib import Path

        from tests.servers import free_port

        self.port = free_port()
        self.log = Path(tmp) / "gunicorn.log"
        self.out = open(self.log, "w")  # noqa: SIM115 -- closed in stop()
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        argv = [gunicorn, "-w", str(workers), "-b", f"127.0.0.1:{self.port}", "--worker-class", "sync", "wsgi:app"]
        self.process = subprocess.Popen(  # noqa: S603
            argv, cwd=root, env=env, stdout=self.out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, workers: int, timeout: float = 60) -> None:
        import time

        from bench.provisioning import _children

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.tail()}")
            if len(_children(self.process.pid)) >= workers:
                try:
                    status, _ = _get(self.base + "/healthz", {}, timeout=5)
                    if status in (200, 404):
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout:g}s:\n{self.tail()}")

    def workers(self) -> list[int]:
        from bench.provisioning import _children

        return _children(self.process.pid)

    def tail(self, lines: int = 30) -> str:
        self.out.flush()
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        import contextlib
        import signal

        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its master
            os.killpg(self.process.pid, signal.SIGKILL)
        self.out.close()


# ---------------------------------------------------------------------------------------------- checks


def _get(url: str, headers: dict, timeout: float = 10) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)  # noqa: S310 -- http://127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _auth(userid: str, key: str) -> dict:
    return {"Authorization": f"ApiKey {userid}:{key}", "Qualifier": QUALIFIER}


def _check_config(base: str, userid: str, key: str) -> dict:
    """One config request: 200 and the contract's shape for ``userid``; its data."""
    import json

    status, body = _get(base + "/api/v1/config/", _auth(userid, key))
    if status != 200:
        raise RuntimeError(f"GET /api/v1/config/ as {userid}: {status} {body[:300]!r}")
    answer = json.loads(body)
    problems = []
    if answer.get("meta", {}).get("total_count") != 1:
        problems.append(f"meta {answer.get('meta')!r}")
    objects = answer.get("objects") or [{}]
    data = objects[0].get("data") or {}
    if objects[0].get("resource_uri") != f"/api/v1/config/{QUALIFIER}/":
        problems.append(f"resource_uri {objects[0].get('resource_uri')!r}")
    if not str(data.get("OMEGA_MONGO_URL", "")).endswith(f"/{userid}"):
        problems.append(f"OMEGA_MONGO_URL {data.get('OMEGA_MONGO_URL')!r} (no database {userid})")
    if not str((data.get("OMEGA_CELERY_CONFIG") or {}).get("BROKER_URL", "")).startswith("amqp://"):
        problems.append(f"OMEGA_CELERY_CONFIG {data.get('OMEGA_CELERY_CONFIG')!r}")
    if data.get("OMEGA_USERID") != userid or data.get("OMEGA_QUALIFIER") != QUALIFIER:
        problems.append(f"OMEGA_USERID {data.get('OMEGA_USERID')!r}, OMEGA_QUALIFIER {data.get('OMEGA_QUALIFIER')!r}")
    if problems:
        raise RuntimeError(f"GET /api/v1/config/ as {userid}: wrong answer: " + "; ".join(problems))
    return data


def _check_floor(base: str, headers: dict) -> None:
    import json

    status, body = _get(base + "/healthz", headers)
    if status == 404:
        raise RuntimeError("GET /healthz is 404: the floor needs the app's /healthz (app/views/main.py)")
    if status != 200 or json.loads(body) != {"status": "ok"}:
        raise RuntimeError(f"GET /healthz: {status} {body[:200]!r}")


# ---------------------------------------------------------------------------------------------- load

LUA = """-- generated by bench/config_api.py: rotate over the users' ApiKey headers, one request each
local auth = {
%(auth)s
}
local prepared = {}
local counter = 0
local started = 0

function setup(thread)
  thread:set("thread_number", started)
  started = started + 1
end

function init(args)
  for i, value in ipairs(auth) do
    prepared[i] = wrk.format("GET", nil, {["Authorization"] = value, ["Qualifier"] = "%(qualifier)s"})
  end
  -- threads start at different users
  counter = (thread_number or 0) * math.floor(#prepared / 2)
end

function request()
  counter = counter + 1
  return prepared[(counter %% #prepared) + 1]
end

function done(summary, latency, requests)
  io.write(string.format("WRK-RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d %%d %%.1f\\n",
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""
RESULT_FIELDS = (
    "requests",
    "duration_us",
    "bytes",
    "connect",
    "read",
    "write",
    "status",
    "timeout",
    "p50_us",
    "p90_us",
    "p99_us",
    "max_us",
    "mean_us",
)


def _write_lua(path, users: list[tuple[str, str]]) -> None:
    lines = ",\n".join(f'  "ApiKey {userid}:{key}"' for userid, key in users)
    path.write_text(LUA % {"auth": lines, "qualifier": QUALIFIER})


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
    return total


def _wrk(wrk: str, url: str, script, connections: int, seconds: int, server_pids: list[int]) -> dict:
    threads = max(1, min(2, connections))
    argv = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s"]
    argv += ["-s", str(script), url]
    ticks = _cpu_ticks(server_pids)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)  # noqa: S603
    ticks = _cpu_ticks(server_pids) - ticks
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK-RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    values = lines[-1].split()[1:]
    result = {name: float(value) for name, value in zip(RESULT_FIELDS, values, strict=True)}
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = {name: int(result[name]) for name in ("connect", "read", "write", "status", "timeout")}
    result["server_cpu_ms"] = ticks * 1000 / os.sysconf("SC_CLK_TCK")
    return result


def _measure(label: str, wrk: str, url: str, script, args, server_pids: list[int], warmup: bool = True) -> dict:
    if warmup and args.warmup > 0:
        _wrk(wrk, url, script, args.connections, args.warmup, server_pids)
    result = _wrk(wrk, url, script, args.connections, args.duration, server_pids)
    print(f"config_api:   {label}: {_figures(result)}", flush=True)
    return result


def _figures(result: dict) -> str:
    return (
        f"{result['rps']:.0f} requests/s ({result['requests']:.0f} in {result['duration_us'] / 1e6:.1f} s),"
        f" latency p50 {result['p50_us'] / 1000:.1f} ms, p90 {result['p90_us'] / 1000:.1f} ms,"
        f" p99 {result['p99_us'] / 1000:.1f} ms, max {result['max_us'] / 1000:.1f} ms"
    )


# ---------------------------------------------------------------------------------------------- report


def len_cold(args) -> int:
    return max(0, min(args.rotate, args.users - args.rotate))


def _report(args, backend: str, setup_seconds: float, ours: dict, floor: dict, first, sampled: int, rss_mb) -> None:
    ratio = ours["rps"] / floor["rps"]
    p99 = ours["p99_us"] / 1000
    runs = [ours, floor] + ([first] if first else [])
    errors = {name: sum(run["errors"][name] for run in runs) for name in ours["errors"]}
    clean = not any(errors.values())

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    def errors_text(result: dict) -> str:
        e = result["errors"]
        return (
            f"non-2xx/3xx (status >= 400) {e['status']}, socket errors connect {e['connect']} read {e['read']}"
            f" write {e['write']}, timeouts {e['timeout']}"
        )

    def cpu(result: dict) -> str:
        return f"{result['server_cpu_ms'] / result['requests']:.2f} ms"

    lines = [
        f"config_api: GET /api/v1/config/, {args.users} users, {backend}, gunicorn -w {args.gunicorn_workers} (sync),"
        f" wrk -c {args.connections} -t {max(1, min(2, args.connections))}, {args.duration} s after {args.warmup} s"
        f" warm-up; keys of {min(args.rotate, args.users)} users rotated",
        f"  set-up (migrate, plan, bulk insert of users, keys, deployments): {setup_seconds:.1f} s",
        "  ours  GET /api/v1/config/ (steady state: every key marked used within the minute, as when in use):",
        f"    {_figures(ours)}",
        f"    wrk: {errors_text(ours)}",
        f"  floor GET /healthz (same app, same headers): {_figures(floor)}",
        f"    wrk: {errors_text(floor)}",
        f"  ratio ours/floor: {ratio:.2f} (target >= {TARGET_RATIO})",
    ]
    if first:
        lines += [
            f"  ours, first calls of {len_cold(args)} other users (each key's first use: UPDATE last_used_at + COMMIT;"
            " no warm-up; informational):",
            f"    {_figures(first)}; server CPU {cpu(first)} per request",
            f"    wrk: {errors_text(first)}",
        ]
    lines += [
        f"  server CPU per request (gunicorn workers' user+system): ours {cpu(ours)}, floor {cpu(floor)};"
        f" worker RSS after the runs: {', '.join(f'{value:.0f}' for value in rss_mb)} MB",
        f"  closed loop: mean latency ~ connections / throughput ({args.connections} / {ours['rps']:.0f}/s ="
        f" {args.connections / ours['rps'] * 1000:.1f} ms; measured mean {ours['mean_us'] / 1000:.1f} ms)",
        f"  checked: one answer's shape before the load; {sampled} rotated users' answers after it",
        "  targets:",
        f"    {verdict(ratio >= TARGET_RATIO)}  throughput >= {TARGET_RATIO} x floor ({ratio:.2f}:"
        f" {ours['rps']:.0f} vs {floor['rps']:.0f} requests/s)",
        f"    {verdict(p99 <= TARGET_P99_MS)}  p99 latency <= {TARGET_P99_MS:.0f} ms ({p99:.1f} ms;"
        f" the floor's own p99: {floor['p99_us'] / 1000:.1f} ms)",
        f"    {verdict(clean)}  no non-2xx responses, socket errors or timeouts during the load ("
        + ", ".join(f"{name} {value}" for name, value in errors.items())
        + ")",
    ]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------------------- entry


def run(args) -> None:
    import random
    import sys
    import tempfile
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench.provisioning import _mb, _status_kb, teardown
    from tests.servers import PostgresServer, RedisServer

    if min(args.users, args.connections, args.duration, args.rotate, args.gunicorn_workers) < 1 or args.warmup < 0:
        raise ValueError("--users, --connections, --duration, --rotate and --gunicorn-workers must be at least 1")
    wrk = _ensure_wrk()
    postgres_wanted = getattr(args, "postgres", False)
    tmp = Path(tempfile.mkdtemp(prefix="omegaops-bench-config-"))
    redis = postgres = server = context = None
    try:
        started = time.perf_counter()
        redis = RedisServer()
        if postgres_wanted:
            postgres = PostgresServer()
            database_url = postgres.create_database("bench_config")
        else:
            database_url = f"sqlite:///{tmp / 'bench.db'}"
        backend = "postgresql" if postgres_wanted else "sqlite"
        print(f"config_api: setting up ({args.users} users, {backend})", flush=True)
        env = _server_env(database_url, redis.url, tmp)
        _migrate(env, root)

        from app import create_app
        from config import TestConfig

        app = create_app(TestConfig, SQLALCHEMY_DATABASE_URI=database_url, REDIS_URL=redis.url, INSTANCE_DIR=tmp)
        context = app.app_context()
        context.push()
        from app.extensions import db

        users = _populate(app, args.users, root)
        db.session.remove()
        db.engine.dispose()
        context.pop()
        context = None
        setup_seconds = time.perf_counter() - started

        chosen = random.Random(42).sample(  # noqa: S311 -- which users, not secrets
            users, min(2 * args.rotate, len(users))
        )
        rotated, cold = chosen[: args.rotate], chosen[args.rotate :]
        script, cold_script = tmp / "rotate.lua", tmp / "rotate-cold.lua"
        _write_lua(script, rotated)
        if cold:
            _write_lua(cold_script, cold)

        server = Gunicorn(env, root, tmp, args.gunicorn_workers)
        server.wait_ready(args.gunicorn_workers)
        _check_floor(server.base, _auth(*rotated[0]))
        _check_config(server.base, *rotated[0])
        print(f"config_api:   checked: /healthz and one config answer ({rotated[0][0]}) are right", flush=True)

        pids = server.workers()
        url = server.base + "/api/v1/config/"
        floor = _measure("floor GET /healthz", wrk, server.base + "/healthz", script, args, pids)
        _mark_keys_used(database_url, [userid for userid, _ in rotated])  # the run starts well within the minute
        ours = _measure("ours GET /api/v1/config/ (steady: keys in use)", wrk, url, script, args, pids)
        first = None
        if cold:
            first = _measure("ours, first calls (keys not used yet)", wrk, url, cold_script, args, pids, warmup=False)
        if server.process.poll() is not None or sorted(server.workers()) != sorted(pids):
            raise RuntimeError(f"gunicorn lost workers during the load:\n{server.tail()}")
        rss = [_mb(_status_kb(pid).get("VmRSS")) for pid in pids]

        sample = rotated[:: max(1, len(rotated) // 50)]
        for userid, key in sample:
            _check_config(server.base, userid, key)
        _report(args, backend, setup_seconds, ours, floor, first, len(sample), rss)
    finally:
        if server is not None:
            server.stop()
        teardown(context, redis, postgres, tmp)
