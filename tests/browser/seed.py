"""A console worth crawling: at least one valid row of every model, in the states the console's pages and actions
depend on, made the way the app makes them (the engine, the billing run's functions, the usage recorder).

``seed()`` runs in the live server's app context (the ``live_app`` fixture) and says which rows a crawler may act
on: ``subjects`` (details pages visited, their actions accepted), ``disposable`` (rows a list page may delete) and
``in_flight`` (commands left queued or running on purpose: no worker ever runs them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from rq.registry import FailedJobRegistry
from sqlalchemy import select, update

from app import accounts
from app.billing.invoices import finalize, write_draft
from app.billing.payments import record_payment
from app.extensions import db
from app.jobs.queues import PROVISIONING, get_queue
from app.models import (
    ApiKey,
    FailureReason,
    Group,
    Health,
    IdempotencyKey,
    Invoice,
    Metric,
    Payment,
    PeriodicRun,
    ServiceCommand,
    ServiceConfiguration,
    ServiceDeployment,
    ServicePlan,
    ServiceTask,
    Status,
    UsageCheckpoint,
    UsageDaily,
    UsageEvent,
    User,
)
from app.models.types import utcnow
from app.ops import engine
from app.ops.commands import issue_command
from app.usage.events import record

from ..factories import SIMPLE_SPEC, TEST_PARAMETERS, make_plan, make_user
from ..processes import wait_until

# the billing periods of the seeded invoices: long ended, so the run's rules hold
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
FINALIZED = datetime(2025, 12, 1, 3, 0, tzinfo=UTC)
# a job the worker fails at once (a BillingError), for the failed-jobs table of Operations
FAILING_JOB = "app.billing.invoices.period_bounds"


@dataclass
class Seed:
    admin: User
    password_user: User  # a plain user, to see the console refused
    subjects: dict[type, list] = field(default_factory=dict)
    disposable: dict[type, list] = field(default_factory=dict)
    in_flight: set[int] = field(default_factory=set)
    failed_jobs: list[str] = field(default_factory=list)

    def add(self, kind: dict, model: type, *rows) -> None:
        kind.setdefault(model, []).extend(row.id for row in rows)


def _install(plan: str, user: User, since: datetime | None = None) -> ServiceCommand:
    """An install run to completion by the engine in this process (no worker involved), installed at ``since``."""
    command = issue_command(plan=plan, user=user, phase="install", params="", privileged=True)
    db.session.commit()
    engine.execute(command.id, worker="seed")
    db.session.expire_all()
    if since is not None:
        db.session.execute(update(ServiceCommand).where(ServiceCommand.id == command.id).values(finished_at=since))
        db.session.execute(
            update(ServiceDeployment).where(ServiceDeployment.id == command.deployment_id).values(created_at=since)
        )
        db.session.commit()
    return db.session.get(ServiceCommand, command.id)


def _uninstall(deployment: ServiceDeployment) -> ServiceCommand:
    command = issue_command(
        plan=deployment.plan,
        user=deployment.user,
        phase="uninstall",
        params="",
        deployment_id=deployment.id,
        privileged=True,
    )
    db.session.commit()
    engine.execute(command.id, worker="seed")
    db.session.expire_all()
    return db.session.get(ServiceCommand, command.id)


def _first_step(command: ServiceCommand):
    return command.configuration.steps_for(command.phase)[0]


def _first_task(command: ServiceCommand, log: str, now: datetime) -> ServiceTask:
    """The task of the command's first step, started at ``now`` with ``log`` so far (not added yet)."""
    step = _first_step(command)
    return ServiceTask(
        command=command,
        deployment=command.deployment,
        position=step.position,
        name=step.name,
        step={"task": step.target},
        log=log,
        host="seed",
        created_at=now,
        started_at=now,
    )


def _failed_install(plan: str, user: User) -> ServiceCommand:
    """An install whose one task failed with a script error, as the engine leaves it (written directly:
    no shipped step fails on demand)."""
    command = issue_command(plan=plan, user=user, phase="install", params="", privileged=True)
    db.session.flush()
    now = utcnow()
    task = _first_task(command, "provisioning the database\nERROR: no space left on device\n", now)
    for status in (Status.PENDING, Status.FAILED):
        task.status = status
        command.status = status
    task.exit_code, task.failure_reason, task.finished_at = 1, FailureReason.SCRIPT_ERROR.value, now
    command.failure_reason = FailureReason.SCRIPT_ERROR.value
    command.failure_detail = "step 1 failed: no space left on device"
    command.started_at, command.finished_at, command.worker = now, now, "seed:1"
    command.deployment.status = Status.FAILED
    command.deployment.text = "the install failed: retry it"
    db.session.add(task)
    db.session.commit()
    return command


def _queued_install(plan: str, user: User) -> ServiceCommand:
    """An install issued and never dispatched (INITIATED)."""
    command = issue_command(plan=plan, user=user, phase="install", params="", privileged=True)
    db.session.commit()
    return command


def _running_install(plan: str, user: User) -> ServiceCommand:
    """An install claimed by a worker that is running its first task (PENDING, a log so far)."""
    command = issue_command(plan=plan, user=user, phase="install", params="", privileged=True)
    db.session.flush()
    now = utcnow()
    command.status = Status.PENDING
    command.started_at, command.heartbeat_at, command.worker = now, now, "seed:2"
    command.deployment.status = Status.PENDING
    task = _first_task(command, "provisioning the database\n", now)
    task.heartbeat_at = now
    task.status = Status.PENDING
    db.session.add(task)
    db.session.commit()
    return command


def _invoice(user: User, period: str, state: str, reference: str = "") -> Invoice:
    """The user's invoice of ``period``: a draft, or finalized (open), partly paid or paid."""
    invoice = write_draft(user, period)
    assert invoice is not None, f"nothing billable for {user.email} in {period}"
    db.session.commit()
    if state != "draft":
        finalize(invoice, FINALIZED)
        db.session.commit()
    if state in ("partly paid", "paid"):
        amount = invoice.total // 2 if state == "partly paid" else invoice.total
        record_payment(invoice, amount, "bank transfer", reference, date(2025, 12, 5), note="seeded")
    return invoice


def _failed_job(tag: str, n: int) -> str:
    """A job on the provisioning queue that fails as soon as the worker runs it."""
    job = get_queue(PROVISIONING).enqueue(
        FAILING_JOB,
        f"not a month {n}",
        job_id=f"crawl-{tag}-failing-{n}",
        description=f"seeded failing job {n}",
        failure_ttl=3600,
    )
    return job.id


def _wait_failed(job_ids: list[str]) -> None:
    registry = FailedJobRegistry(queue=get_queue(PROVISIONING))
    wait_until(lambda: set(job_ids) <= set(registry.get_job_ids()), 30, message=f"the worker failed {job_ids}")


def seed() -> Seed:
    """Create the crawl's rows (in the live server's database) and say which to act on."""
    tag = uuid.uuid4().hex[:6]
    admin = make_user(email=f"crawler-{tag}@example.com", userid=f"crawler-{tag}", admin=True)
    ada = make_user(
        email=f"ada-{tag}@example.com",
        company="Lovelace Ltd",
        billing_address="Main Street 1\n8000 Zurich",
        country="CH",
        tax_id="CHE-123.456.789",
    )
    bob = make_user(email=f"bob-{tag}@example.com", admin=True)  # an admin to take the rights back from
    carol = make_user(email=f"carol-{tag}@example.com", active=False, confirmed=False)
    plain = make_user(email=f"plain-{tag}@example.com")
    for user, name in ((ada, "laptop"), (ada, "old laptop"), (carol, "script")):
        accounts.create_api_key(user, name)
    db.session.flush()
    ada_old = db.session.scalar(select(ApiKey).where(ApiKey.user_id == ada.id).order_by(ApiKey.id.desc()))
    accounts.revoke_api_key(ada, ada_old.id)
    team = Group(name=f"team-{tag}", account=ada, members=[ada, bob])
    db.session.add(team)
    db.session.commit()

    # a plan of our own (a harmless task step, many deployments per user, a base fee) in two versions, one of
    # whose metric prices usage; and a spare one, never deployed
    name = f"crawl-{tag}"
    make_plan(name=name, title="Crawl plan", one_per_user=False)
    plan = make_plan(
        spec=SIMPLE_SPEC.format(
            name=name, title="Crawl plan", offered="true", one_per_user="false", parameters=TEST_PARAMETERS
        ).replace('params: ""', 'params: "qualifier=default"')
    )
    plan.base_fee = 1990
    spare = make_plan(name=f"spare-{tag}", title="Spare plan", offered=False)
    metric = Metric(
        plan=plan,
        name="api requests",
        kind="api",
        action="request",
        unit="requests",
        unit_price="0.5",
        included="100",
    )
    spare_metrics = [
        Metric(plan=plan, name=f"spare metric {n}", kind="api", action="request", aggregation="count") for n in (1, 2)
    ]
    db.session.add_all([metric, *spare_metrics])
    db.session.commit()

    # deployments and commands in every state the console shows
    completed = _install(name, ada, since=SINCE)
    completed.deployment.health = Health.HEALTHY.value
    completed.deployment.checked_at = utcnow()
    removed_install = _install(name, ada)
    removed = _uninstall(removed_install.deployment)
    failed = _failed_install(name, ada)
    queued = _queued_install(name, ada)
    running = _running_install(name, bob)
    db.session.commit()

    # usage: events as the batch API takes them, the daily roll-up of the priced metric, a checkpoint
    now = utcnow()
    outcome = record(
        [
            {
                "id": f"crawl-{tag}-{n}",
                "start_dt": (now - timedelta(hours=n)).isoformat(),
                "end_dt": (now - timedelta(hours=n) + timedelta(seconds=2)).isoformat(),
                "user": ada.userid,
                "kind": "api",
                "action": "request",
                "client_ip": "10.0.0.1",
                "data": {"request_uri": "/api/v1/config/", "api_token": "not shown"},
            }
            for n in (1, 2, 3)
        ],
        "batch",
    )
    assert outcome.count("accepted") == 3, outcome.results
    for day, value in (("2025-09-10", 1000), ("2025-10-12", 400)):
        db.session.add(UsageDaily(user_id=ada.id, plan_id=plan.id, metric_id=metric.id, day=day, value=value))
    db.session.merge(UsageCheckpoint(name=f"/var/log/crawl-{tag}.log", identity="1:2 abc", offset=120, lines=3))
    db.session.add(
        IdempotencyKey(
            user_id=ada.id, key=f"crawl-{tag}", request_sha256="0" * 64, status_code=201, response_body="{}"
        )
    )
    db.session.commit()

    # invoices: a draft, three open ones (void, uncollectible, a payment), one partly paid, one paid
    draft = _invoice(ada, "2025-10", "draft")
    opened = [_invoice(ada, period, "open") for period in ("2025-07", "2025-08", "2025-09")]
    partly = _invoice(ada, "2025-06", "partly paid", reference=f"BANK-{tag}-1")
    paid = _invoice(ada, "2025-05", "paid", reference=f"BANK-{tag}-2")
    payments = db.session.scalars(select(Payment).where(Payment.invoice_id.in_([partly.id, paid.id]))).all()

    runs = []
    for job, outcome_, detail in (
        ("app.jobs.periodic.dispatch_initiated", PeriodicRun.OK, "dispatched 0 commands"),
        ("app.billing.jobs.monthly_invoices", PeriodicRun.FAILED, "BillingError: the period has not ended"),
        ("app.usage.rollup.rollup", PeriodicRun.RUNNING, ""),
    ):
        run = PeriodicRun(job=job, outcome=outcome_, detail=detail)
        if outcome_ != PeriodicRun.RUNNING:
            run.finished_at = utcnow()
        runs.append(run)
    db.session.add_all(runs)
    db.session.commit()

    result = Seed(admin=admin, password_user=plain)
    result.failed_jobs = [_failed_job(tag, n) for n in (1, 2)]
    _wait_failed(result.failed_jobs)
    s = result.subjects
    # the order matters: the first page showing an action not yet taken takes it (see the crawler)
    result.add(s, User, carol, bob, ada)
    result.add(s, ServicePlan, spare, plan)
    result.add(
        s,
        ServiceConfiguration,
        *db.session.scalars(
            select(ServiceConfiguration)
            .where(ServiceConfiguration.plan_id == plan.id)
            .order_by(ServiceConfiguration.id)
        ),
    )
    result.add(s, ServiceDeployment, completed.deployment, failed.deployment, removed.deployment)
    result.add(s, ServiceCommand, failed, queued, running, completed)
    result.add(s, ServiceTask, *completed.tasks, *failed.tasks, *running.tasks)
    result.add(s, Metric, metric)
    result.add(s, UsageEvent, *db.session.scalars(select(UsageEvent).where(UsageEvent.user_id == ada.id)))
    result.add(s, Invoice, draft, *opened, partly, paid)
    result.add(s, Payment, *payments)
    result.add(s, PeriodicRun, *runs)
    result.add(result.disposable, Metric, *spare_metrics)
    result.in_flight = {queued.id, running.id}
    return result
