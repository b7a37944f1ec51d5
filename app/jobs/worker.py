"""``flask worker``: an RQ worker whose jobs run inside the app, built once per worker process.

By default jobs run in the worker process itself (RQ's ``SimpleWorker``): the app, its compiled
queries and its database connections serve job after job, which is what makes a command cost a few
milliseconds of overhead instead of a fork's rebuild of all of that. The engine contains its own
failures and limits each script with a timeout; ``--fork`` gives each job a fresh forked process
instead, for jobs that should not share one.
"""

import os
import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import SimpleWorker, Worker
from rq.job import Job

from ..extensions import db
from .queues import ALL_QUEUES, get_redis

_app: Flask | None = None
_app_pid: int | None = None


class AppJob(Job):
    """A job performed inside an app context, on database connections of its own process."""

    def perform(self):
        app = _app or current_app._get_current_object()
        with app.app_context():
            if _app_pid is not None and os.getpid() != _app_pid:
                # a forked work horse: never reuse the parent's pooled connections
                db.engine.dispose(close=False)
            try:
                return super().perform()
            finally:
                db.session.remove()


def wait_for_redis(seconds: int) -> None:
    """Return once Redis answers; exit with one line when it has not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            get_redis().ping()
            return
        except RedisConnectionError as exc:
            if time.monotonic() >= deadline:
                url = current_app.config["REDIS_URL"]
                raise click.ClickException(f"cannot reach Redis at {url}: {exc}") from None
            time.sleep(0.5)


def warm_up() -> None:
    """Configure the mappers and compile a query once in the parent, so each forked job does not."""
    from sqlalchemy import select
    from sqlalchemy.orm import configure_mappers

    from ..models import ServiceCommand

    configure_mappers()
    db.session.execute(select(ServiceCommand.id).limit(1))
    db.session.remove()
    db.engine.dispose()


def make_worker(queues=ALL_QUEUES, name: str | None = None, fork: bool = False) -> Worker:
    """An RQ worker on the app's Redis that listens to ``queues`` and runs ``AppJob``s."""
    global _app, _app_pid
    _app = current_app._get_current_object()
    _app_pid = os.getpid()
    warm_up()
    worker_class = Worker if fork else SimpleWorker
    return worker_class(list(queues), connection=get_redis(), job_class=AppJob, name=name)


@click.command("worker")
@click.option("--queue", "queues", multiple=True, type=click.Choice(ALL_QUEUES), help="Listen to these queues only.")
@click.option("--burst", is_flag=True, help="Quit when the queues are empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.option("--wait", default=0, type=click.IntRange(0, 600), help="Seconds to wait for Redis to come up.")
@click.option("--fork", is_flag=True, help="Run each job in a forked process of its own.")
@click.option(
    "--log-level",
    default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="RQ's log level (INFO logs every job, periodic ones included).",
)
@with_appcontext
def worker_command(queues, burst, name, wait, fork, log_level):
    """Run an RQ worker for the provisioning and periodic queues."""
    wait_for_redis(wait)
    worker = make_worker(queues or ALL_QUEUES, name=name, fork=fork)
    worker.work(burst=burst, with_scheduler=False, logging_level=log_level)


def register(app: Flask) -> None:
    app.cli.add_command(worker_command)
