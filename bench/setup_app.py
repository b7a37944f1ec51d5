"""The set-up the benchmarks share: a temp dir, Redis, a migrated database (SQLite, or PostgreSQL) and the app.

Not a benchmark (no ``run``): ``bench.__main__`` lists only the modules that have one.
"""

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def project_root() -> Path:
    """The repository's root, put on ``sys.path`` (``app``, ``config`` and ``tests`` are imported from there)."""
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


@dataclass
class BenchApp:
    """What ``bench_app`` set up: the app (its context pushed), the servers and where things are."""

    app: object
    context: object  # the app context pushed; a benchmark may pop it for a while, as long as it is pushed at the end
    root: Path
    tmp: Path
    scripts: Path
    database_url: str
    redis: object  # tests.servers.RedisServer
    postgres: object | None  # tests.servers.PostgresServer, on PostgreSQL
    env: dict  # the environment of ``flask``/gunicorn/worker processes on this database and Redis
    backend: str  # "postgresql" or "sqlite"


@contextmanager
def bench_app(name: str, key: str, postgres: bool, detail: str = ""):
    """Set up a benchmark's app, yield a ``BenchApp``; tear down whatever was reached, whatever happens.

    ``name`` starts the "setting up" line printed (``{name}: setting up ({detail}{backend})``); ``key`` names
    the temp dir (``omegaops-bench-{key}-...``) and the PostgreSQL database (``bench_{key}``). The database is
    migrated with ``flask db upgrade`` (in a child process, with ``env``), the app created with ``TestConfig``
    on it, Redis, the temp dir as INSTANCE_DIR and ``tmp / "scripts"`` as SCRIPTS_DIR.
    """
    import tempfile

    root = project_root()
    from bench.config_api import _migrate, _server_env
    from bench.provisioning import teardown
    from tests.servers import PostgresServer, RedisServer

    backend = "postgresql" if postgres else "sqlite"
    tmp = Path(tempfile.mkdtemp(prefix=f"omegaops-bench-{key}-"))
    redis = postgres_server = context = None  # not started yet: None for the teardown
    try:
        redis = RedisServer()
        if postgres:
            postgres_server = PostgresServer()
            database_url = postgres_server.create_database(f"bench_{key}")
        else:
            database_url = f"sqlite:///{tmp / 'bench.db'}"
        print(f"{name}: setting up ({detail}{backend})", flush=True)
        scripts = tmp / "scripts"
        env = _server_env(database_url, redis.url, tmp)
        env["OMEGAOPS_SCRIPTS_DIR"] = str(scripts)
        _migrate(env, root)

        from app import create_app
        from config import TestConfig

        app = create_app(
            TestConfig,
            SQLALCHEMY_DATABASE_URI=database_url,
            REDIS_URL=redis.url,
            INSTANCE_DIR=tmp,
            SCRIPTS_DIR=scripts,
        )
        context = app.app_context()
        context.push()
        yield BenchApp(
            app=app,
            context=context,
            root=root,
            tmp=tmp,
            scripts=scripts,
            database_url=database_url,
            redis=redis,
            postgres=postgres_server,
            env=env,
            backend=backend,
        )
    finally:
        teardown(context, redis, postgres_server, tmp)
