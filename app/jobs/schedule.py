"""The periodic jobs, in one list, and ``flask scheduler``, which runs them with RQ's cron scheduler."""

from dataclasses import dataclass

import click
from flask import Flask
from flask.cli import with_appcontext
from rq.cron import CronScheduler

from .queues import PERIODIC, get_redis
from .worker import wait_for_redis


@dataclass(frozen=True)
class Periodic:
    func: str  # dotted path of a module-level job function
    interval: int | None = None  # seconds
    cron: str | None = None  # a cron string, in UTC
    timeout: int = 300


# filled by the engine (dispatch, reaper), usage and billing issues
SCHEDULE: list[Periodic] = []


def build_cron(schedule: list[Periodic]) -> CronScheduler:
    """A cron scheduler on the app's Redis with every periodic job registered."""
    cron = CronScheduler(connection=get_redis())
    for job in schedule:
        module_name, attr = job.func.rsplit(".", 1)
        func = getattr(__import__(module_name, fromlist=[attr]), attr)
        cron.register(func, queue_name=PERIODIC, interval=job.interval, cron=job.cron, job_timeout=job.timeout)
    return cron


@click.command("scheduler")
@click.option("--wait", default=0, type=click.IntRange(0, 600), help="Seconds to wait for Redis to come up.")
@with_appcontext
def scheduler_command(wait):
    """Run the periodic jobs' scheduler (run exactly one)."""
    wait_for_redis(wait)
    cron = build_cron(SCHEDULE)
    click.echo(f"scheduler: {len(SCHEDULE)} periodic job(s) registered")
    cron.start()


def register(app: Flask) -> None:
    app.cli.add_command(scheduler_command)
