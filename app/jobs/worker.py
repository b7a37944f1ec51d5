"""``flask worker``: an RQ worker whose jobs run inside the app, built once in the parent process."""

import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Worker
from rq.job import Job

from ..extensions import db
from .queues import ALL_QUEUES, get_redis

_app: Flask | None = None


class AppJob(Job):
    """A job performed inside an app context, on database connections of its own process."""

    def perform(self):
        app = _app or current_app._get_current_object()
        with app.app_context():
            # the work horse is a fork of the worker: never reuse the parent's pooled connections
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


def make_worker(queues=ALL_QUEUES, name: str | None = None) -> Worker:
    """An RQ worker on the app's Redis that listens to ``queues`` and runs ``AppJob``s."""
    global _app
    _app = current_app._get_current_object()
    return Worker(list(queues), connection=get_redis(), job_class=AppJob, name=name)


@click.command("worker")
@click.option("--queue", "queues", multiple=True, type=click.Choice(ALL_QUEUES), help="Listen to these queues only.")
@click.option("--burst", is_flag=True, help="Quit when the queues are empty.")
@click.option("--name", default=None, help="Worker name (default: RQ's).")
@click.option("--wait", default=0, type=click.IntRange(0, 600), help="Seconds to wait for Redis to come up.")
@with_appcontext
def worker_command(queues, burst, name, wait):
    """Run an RQ worker for the provisioning and periodic queues."""
    wait_for_redis(wait)
    worker = make_worker(queues or ALL_QUEUES, name=name)
    worker.work(burst=burst, with_scheduler=False)


def register(app: Flask) -> None:
    app.cli.add_command(worker_command)
