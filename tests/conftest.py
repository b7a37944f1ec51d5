"""Fixtures: the app on SQLite (and PostgreSQL where it must hold there too), real Redis, client, runner."""

import uuid

import pytest

from app import create_app
from app.extensions import db
from config import TestConfig

from . import factories
from .servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    from redis import Redis

    connection = Redis.from_url(redis_server.url)
    connection.flushall()
    connection.close()
    return redis_server.url


@pytest.fixture
def postgres_url(postgres_server):
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'test.db'}"


def make_app(database_url, redis_url, tmp_path, **overrides):
    return create_app(
        TestConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        REDIS_URL=redis_url,
        INSTANCE_DIR=tmp_path,
        **overrides,
    )


def app_with_tables(database_url, redis_url, tmp_path):
    """Yield the app inside its context with every table created; clean up after."""
    app = make_app(database_url, redis_url, tmp_path)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def module_app(redis_server, tmp_path_factory):
    """One app per test module: building one (its ~150 URL rules compiled) costs half a second."""
    path = tmp_path_factory.mktemp("app")
    return make_app(f"sqlite:///{path / 'test.db'}", redis_server.url, path)


@pytest.fixture
def app(module_app, redis_url, tmp_path):
    """The module's app on empty tables and an empty Redis, with its config as built (restored after)."""
    saved = module_app.config.copy()
    module_app.config["INSTANCE_DIR"] = tmp_path
    with module_app.app_context():
        db.drop_all()
        db.create_all()
        yield module_app
        db.session.remove()
    module_app.config.clear()
    module_app.config.update(saved)
    # a test may point REDIS_URL elsewhere: the next one makes its Redis client anew
    redis = module_app.extensions.get("omegaops.redis")
    if redis is not None:
        redis.close()
    module_app.extensions["omegaops.redis"] = None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_app(request, redis_url, tmp_path):
    """The app on SQLite, then on PostgreSQL: for behaviour that must hold on both."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    yield from app_with_tables(url, redis_url, tmp_path)


@pytest.fixture
def scripts(app, tmp_path):
    """An empty scripts directory of the test's own, as the app's SCRIPTS_DIR."""
    app.config["SCRIPTS_DIR"] = tmp_path / "scripts"
    app.config["SCRIPTS_DIR"].mkdir()
    return app.config["SCRIPTS_DIR"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def login(client):
    """Log ``user`` in through the login form; returns the response."""

    def do_login(user, password=factories.PASSWORD):
        return client.post("/login", data={"email": user.email, "password": password})

    return do_login
