"""The periodic jobs, in one list, and ``flask scheduler``, which runs them with RQ's cron scheduler.

RQ's cron scheduler keeps no lock of its own: a second scheduler process would enqueue every job
twice. ``LockedCronScheduler`` enqueues only while it holds a lock in Redis with a TTL, renewed as it
runs; a standby takes over once the holder has died and its lock expired.
"""

import importlib
import secrets
from dataclasses import dataclass

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from redis import Redis
from redis.exceptions import RedisError
from rq.cron import CronScheduler

from .queues import PERIODIC, get_redis
from .recorded import run_recorded
from .worker import wait_for_redis

LOCK_KEY = "omegaops:scheduler:lock"


@dataclass(frozen=True)
class Periodic:
    func: str  # dotted path of a module-level job function
    interval: int | None = None  # seconds
    cron: str | None = None  # a cron string
    timeout: int = 300


# cron strings are UTC (RQ 2 computes them from an aware UTC now; test_schedule pins it under another TZ)
SCHEDULE: list[Periodic] = [
    Periodic("app.jobs.periodic.dispatch_initiated", interval=5, timeout=60),
    Periodic("app.jobs.periodic.reap_lost_tasks", interval=30, timeout=120),
    Periodic("app.jobs.periodic.health_checks", cron="*/15 * * * *", timeout=300),
    Periodic("app.usage.requests.drain_request_log", interval=10, timeout=300),
    Periodic("app.usage.rollup.rollup", cron="7 * * * *", timeout=3600),
    Periodic("app.jobs.maintenance.maintenance", cron="30 3 * * *", timeout=3600),
    Periodic("app.billing.jobs.monthly_invoices", cron="0 2 1 * *", timeout=6 * 3600),
    Periodic("app.billing.reminders.send_reminders", cron="0 9 * * *", timeout=3600),
]


class RedisLock:
    """A lock held by one process at a time, with a TTL so a dead holder loses it."""

    # renew only our own lock: another process may hold it after ours expired
    RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
    RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, connection: Redis, key: str = LOCK_KEY, ttl: int = 30):
        self.connection, self.key, self.ttl = connection, key, ttl
        self.token = secrets.token_hex(16)

    def hold(self) -> bool:
        """Take the lock, or renew it when it is ours; False while another process holds it."""
        if self.connection.set(self.key, self.token, nx=True, ex=self.ttl):
            return True
        return bool(self.connection.eval(self.RENEW, 1, self.key, self.token, self.ttl))

    def release(self) -> None:
        self.connection.eval(self.RELEASE, 1, self.key, self.token)


class LockedCronScheduler(CronScheduler):
    """RQ's cron scheduler that enqueues only while it holds the scheduler lock."""

    def __init__(self, connection: Redis, lock_ttl: int = 30, **kwargs):
        super().__init__(connection=connection, **kwargs)
        self.lock = RedisLock(connection, ttl=lock_ttl)
        self.leading: bool | None = None  # unknown until the first try, so both outcomes are logged

    def enqueue_jobs(self):
        try:
            leading = self.lock.hold()
        except RedisError as exc:
            self.log.warning("scheduler %s: Redis unreachable (%s); not enqueuing", self.name, exc)
            return []
        if leading != self.leading:
            self.log.info("scheduler %s: %s", self.name, "leading" if leading else "standing by")
            self.leading = leading
        return super().enqueue_jobs() if leading else []

    def calculate_sleep_interval(self) -> float:
        # wake up often enough to renew the lock, or to take it over
        return min(super().calculate_sleep_interval(), self.lock.ttl / 3)

    def register_death(self, pipeline=None) -> None:
        try:
            if self.leading:
                self.lock.release()
        finally:
            super().register_death(pipeline)


def build_cron(schedule: list[Periodic], connection: Redis, lock_ttl: int = 30) -> LockedCronScheduler:
    """A locked cron scheduler with every periodic job registered."""
    cron = LockedCronScheduler(connection, lock_ttl=lock_ttl)
    for job in schedule:
        module_name, attr = job.func.rsplit(".", 1)
        getattr(importlib.import_module(module_name), attr)  # a typo fails at start, not at the first run
        # every run goes through run_recorded (a row in periodic_runs); named after the job, not the wrapper
        cron.register(
            run_recorded,
            queue_name=PERIODIC,
            args=(job.func,),
            interval=job.interval,
            cron=job.cron,
            job_timeout=job.timeout,
            result_ttl=600,
            name=job.func,
        )
    return cron


@click.command("scheduler")
@click.option("--wait", default=0, type=click.IntRange(0, 600), help="Seconds to wait for Redis to come up.")
@click.option(
    "--lock-ttl", default=30, type=click.IntRange(3, 3600), help="Seconds before a dead leader's lock expires."
)
@with_appcontext
def scheduler_command(wait, lock_ttl):
    """Run the periodic jobs' scheduler (several may run: one leads, the others stand by)."""
    wait_for_redis(wait)
    cron = build_cron(SCHEDULE, get_redis(), lock_ttl=lock_ttl)
    click.echo(f"scheduler: {len(SCHEDULE)} periodic job(s) registered on {current_app.config['REDIS_URL']}")
    cron.start()


def register(app: Flask) -> None:
    app.cli.add_command(scheduler_command)
