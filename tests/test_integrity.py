"""Integrity in the schema: every foreign key says what a delete does, history is never deleted with its user or
plan, a never-used plan takes its details with it, and SQLite enforces all of it and never reuses an id."""

import logging
from datetime import date

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Metric,
    Payment,
    ServiceCommand,
    ServiceConfiguration,
    ServiceDeployment,
    ServicePlan,
    ServiceStep,
    ServiceTask,
    UsageDaily,
    UsageEvent,
    User,
)
from app.models.integrity import refusing_references
from app.models.types import utcnow
from app.ops.plans import remove_plan

from .conftest import make_app
from .factories import make_plan, make_user

# What each foreign key does on delete. History (commands, tasks, deployments, invoices, payments, usage) refuses
# the delete of what it refers to; what a plan or user owns outright goes with it. A new foreign key must be
# added here, with its rule, or the first test fails.
ON_DELETE = {
    ("api_keys", "user_id"): ("users", "CASCADE"),
    ("group_members", "group_id"): ("groups", "CASCADE"),
    ("group_members", "user_id"): ("users", "CASCADE"),
    ("groups", "account_id"): ("users", "SET NULL"),
    ("idempotency_keys", "user_id"): ("users", "CASCADE"),
    ("service_configurations", "plan_id"): ("service_plans", "CASCADE"),
    ("service_steps", "configuration_id"): ("service_configurations", "CASCADE"),
    ("metrics", "plan_id"): ("service_plans", "CASCADE"),
    ("usage_daily", "metric_id"): ("metrics", "CASCADE"),
    ("usage_daily", "plan_id"): ("service_plans", "CASCADE"),
    ("usage_daily", "user_id"): ("users", "RESTRICT"),
    ("usage_events", "user_id"): ("users", "RESTRICT"),
    ("usage_events", "plan_id"): ("service_plans", "RESTRICT"),
    ("service_deployments", "user_id"): ("users", "RESTRICT"),
    ("service_deployments", "plan_id"): ("service_plans", "RESTRICT"),
    ("service_deployments", "configuration_id"): ("service_configurations", "RESTRICT"),
    ("service_commands", "issuer_id"): ("users", "RESTRICT"),
    ("service_commands", "user_id"): ("users", "RESTRICT"),
    ("service_commands", "plan_id"): ("service_plans", "RESTRICT"),
    ("service_commands", "deployment_id"): ("service_deployments", "RESTRICT"),
    ("service_commands", "configuration_id"): ("service_configurations", "RESTRICT"),
    ("service_commands", "retry_of_id"): ("service_commands", "NO ACTION"),  # at the statement's end: with its retries
    ("service_tasks", "command_id"): ("service_commands", "RESTRICT"),
    ("service_tasks", "deployment_id"): ("service_deployments", "RESTRICT"),
    ("invoices", "user_id"): ("users", "RESTRICT"),
    ("invoice_lines", "invoice_id"): ("invoices", "CASCADE"),
    ("invoice_lines", "plan_id"): ("service_plans", "RESTRICT"),
    ("invoice_lines", "metric_id"): ("metrics", "RESTRICT"),
    ("payments", "invoice_id"): ("invoices", "RESTRICT"),
    ("payments", "recorded_by_id"): ("users", "RESTRICT"),
}
# ids that the outside world (URLs, API clients, e-mails, logs) or history holds: SQLite must never hand one out twice
NEVER_REUSED = {"service_plans", "users", "service_deployments", "service_commands", "invoices"}


def declared_rules() -> dict:
    return {
        (table.name, fk.parent.name): (fk.column.table.name, fk.ondelete)
        for table in db.metadata.tables.values()
        for fk in table.foreign_keys
    }


def database_rules(engine) -> dict:
    """The rules as the database has them (PostgreSQL's catalog cannot tell a declared NO ACTION from none)."""
    inspector = inspect(engine)
    rules = {}
    for table in inspector.get_table_names():
        for fk in inspector.get_foreign_keys(table):
            (column,) = fk["constrained_columns"]
            rule = (fk.get("options") or {}).get("ondelete") or "NO ACTION"
            rules[(table, column)] = (fk["referred_table"], rule.upper())
    return rules


@pytest.fixture
def logging_as_it_was():
    """Migrating configures logging from alembic.ini, which disables every logger it does not name: undo that."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = {
        name: logger.disabled
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:], root.level = handlers, level
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.disabled = loggers.get(name, False)


def sqlite_table_sql(table: str) -> str:
    return db.session.scalar(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table})


def sqlite_triggers() -> dict:
    rows = db.session.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
    db.session.remove()
    return dict(rows)


def test_every_foreign_key_of_the_models_declares_its_rule():
    assert declared_rules() == ON_DELETE


@pytest.mark.usefixtures("logging_as_it_was")
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_migrated_database_has_every_rule_and_sqlite_never_reuses_ids(request, backend, redis_url, tmp_path):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    app = make_app(url, redis_url, tmp_path)
    with app.app_context():
        upgrade(revision="0011")
        triggers = sqlite_triggers() if backend == "sqlite" else None
        upgrade()
        assert database_rules(db.engine) == ON_DELETE
        if backend == "sqlite":
            assert db.session.scalar(text("PRAGMA foreign_keys")) == 1
            for table in NEVER_REUSED:
                assert "AUTOINCREMENT" in sqlite_table_sql(table), table
            # the rebuilt tables have their triggers back, as they were
            assert triggers and sqlite_triggers() == triggers
        db.session.remove()
        downgrade(revision="0011")
        # the previous rules are back: NO ACTION where nothing was declared
        rules = database_rules(db.engine)
        assert rules[("service_commands", "user_id")] == ("users", "NO ACTION")
        assert rules[("usage_events", "user_id")] == ("users", "CASCADE")
        if backend == "sqlite":
            assert "AUTOINCREMENT" not in sqlite_table_sql("users")
        upgrade()
        assert database_rules(db.engine) == ON_DELETE
        db.session.remove()
        db.engine.dispose()


def test_tables_created_from_the_models_have_every_rule(any_app):
    assert database_rules(db.engine) == ON_DELETE
    if db.engine.dialect.name == "sqlite":
        assert db.session.scalar(text("PRAGMA foreign_keys")) == 1
        for table in NEVER_REUSED:
            assert "AUTOINCREMENT" in sqlite_table_sql(table), table


@pytest.mark.usefixtures("logging_as_it_was")
def test_upgrading_sqlite_drops_the_details_of_plans_deleted_before_it_enforced_foreign_keys(
    sqlite_url, redis_url, tmp_path
):
    app = make_app(sqlite_url, redis_url, tmp_path)
    with app.app_context():
        upgrade(revision="0011")
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # as SQLite ran before 0012
            connection.exec_driver_sql(
                "INSERT INTO metrics (plan_id, name, kind, aggregation, unit, unit_price, included, tiers, created_at)"
                " VALUES (41, 'left', 'api', 'count', '', '0', '0', '[]', '2026-01-01 00:00:00')"
            )
            connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        upgrade()
        assert db.session.scalar(select(func.count()).select_from(Metric)) == 0
        db.session.remove()
        db.engine.dispose()


@pytest.mark.usefixtures("logging_as_it_was")
def test_upgrading_sqlite_refuses_history_that_refers_to_nothing(sqlite_url, redis_url, tmp_path, capsys):
    app = make_app(sqlite_url, redis_url, tmp_path)
    with app.app_context():
        upgrade(revision="0011")
        triggers = sqlite_triggers()
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql(
                "INSERT INTO invoices (user_id, period, status, currency, subtotal, tax, total, tax_rate, tax_note,"
                " reverse_charge, customer, created_at)"
                " VALUES (7, '2026-01', 'draft', 'CHF', 0, 0, 0, '0', '', 0, '{}', '2026-01-01 00:00:00')"
            )
            connection.exec_driver_sql(  # one the upgrade deletes, if it goes ahead
                "INSERT INTO metrics (plan_id, name, kind, aggregation, unit, unit_price, included, tiers, created_at)"
                " VALUES (41, 'left', 'api', 'count', '', '0', '0', '[]', '2026-01-01 00:00:00')"
            )
            connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        with pytest.raises(SystemExit):  # `flask db upgrade` prints the one-line error and exits 1
            upgrade()
        assert "invoices.user_id = 7 (rowid 1)" in capsys.readouterr().err
        db.session.remove()
        assert sqlite_triggers() == triggers
        with db.engine.connect() as connection:  # nothing was changed: still at 0011, the invoice and metric kept
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0011"
            assert connection.exec_driver_sql("SELECT count(*) FROM invoices").scalar() == 1
            assert connection.exec_driver_sql("SELECT count(*) FROM metrics").scalar() == 1
            assert not connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE name LIKE '_alembic%'").all()
            assert (
                "AUTOINCREMENT"
                not in connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'users'").scalar()
            )
        db.engine.dispose()


# rows


def metric_of(plan, name="requests") -> Metric:
    metric = Metric(plan=plan, name=name, kind="api", action="request")
    db.session.add(metric)
    db.session.commit()
    return metric


def deployment_of(user, plan) -> ServiceDeployment:
    deployment = ServiceDeployment(user=user, plan=plan, configuration=plan.current_configuration)
    db.session.add(deployment)
    db.session.commit()
    return deployment


def command_on(deployment, issuer=None) -> ServiceCommand:
    command = ServiceCommand(
        user=deployment.user,
        issuer=issuer,
        plan=deployment.plan,
        deployment=deployment,
        configuration=deployment.configuration,
        phase="install",
    )
    db.session.add(command)
    db.session.commit()
    return command


def task_of(command) -> ServiceTask:
    task = ServiceTask(command=command, deployment=command.deployment, position=0, name="install")
    db.session.add(task)
    db.session.commit()
    return task


def invoice_for(user, plan=None, period="2026-01") -> Invoice:
    invoice = Invoice(user=user, period=period, currency="CHF")
    invoice.lines = [
        InvoiceLine(
            position=1,
            kind="base",
            description="base fee",
            quantity="1",
            unit_price="100",
            amount=100,
            plan_id=plan.id if plan else None,
        )
    ]
    db.session.add(invoice)
    db.session.commit()
    return invoice


def usage_event_of(user, plan=None) -> UsageEvent:
    event = UsageEvent(
        id=f"e-{user.id}-{plan.id if plan else 0}",
        time=utcnow(),
        user_id=user.id,
        plan_id=plan.id if plan else None,
        kind="api",
        action="request",
        source="batch",
    )
    db.session.add(event)
    db.session.commit()
    return event


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def refused(statement) -> None:
    """The database refuses ``statement``; the session is rolled back."""
    with pytest.raises(IntegrityError):
        db.session.execute(statement)
        db.session.commit()
    db.session.rollback()


# a never-used plan takes its details with it


def test_deleting_a_never_used_plan_removes_its_metrics_configurations_and_steps(any_app):
    plan = make_plan("unused")
    metric = metric_of(plan)
    user = make_user()
    db.session.add(UsageDaily(user_id=user.id, plan_id=plan.id, metric_id=metric.id, day="2026-01-01", value=1.0))
    db.session.commit()
    configuration_id = plan.current_configuration.id
    assert count(ServiceStep, ServiceStep.configuration_id == configuration_id) == 1

    result = any_app.test_cli_runner().invoke(args=["deleteservice", "--service", "unused"])
    assert result.exit_code == 0 and "unused: deleted" in result.output, result.output

    db.session.expire_all()
    assert count(ServicePlan) == 0
    assert count(Metric) == 0 and count(UsageDaily) == 0  # the roll-up of its metric: recomputable, not history
    assert count(ServiceConfiguration) == 0 and count(ServiceStep) == 0


def test_the_database_itself_cascades_a_plan_delete_to_its_details(any_app):
    plan = make_plan("unused")
    metric_of(plan)
    db.session.execute(delete(ServicePlan).where(ServicePlan.id == plan.id))
    db.session.commit()
    assert count(Metric) == 0 and count(ServiceConfiguration) == 0 and count(ServiceStep) == 0


def test_a_plan_made_after_the_newest_was_deleted_gets_a_new_id_and_no_metrics(any_app):
    make_plan("first")
    newest = make_plan("second")
    metric_of(newest)
    deleted_id = newest.id
    assert remove_plan(newest)[0] == "deleted"
    db.session.commit()

    again = make_plan("third")
    assert again.id > deleted_id
    assert count(Metric, Metric.plan_id == again.id) == 0
    assert count(Metric) == 0


def delete_newest_user():
    make_user()
    newest = make_user()
    newest_id = newest.id
    db.session.delete(newest)  # a user without history: nothing refers to it
    db.session.commit()
    return newest_id, make_user().id


def delete_newest_deployment():
    user, plan = make_user(), make_plan()
    deployment_of(user, plan)
    newest_id = deployment_of(user, plan).id
    db.session.execute(delete(ServiceDeployment).where(ServiceDeployment.id == newest_id))
    db.session.commit()
    return newest_id, deployment_of(user, plan).id


def delete_newest_command():
    deployment = deployment_of(make_user(), make_plan())
    command_on(deployment)
    newest_id = command_on(deployment).id
    db.session.execute(delete(ServiceCommand).where(ServiceCommand.id == newest_id))
    db.session.commit()
    return newest_id, command_on(deployment).id


def delete_newest_invoice():
    user = make_user()
    invoice_for(user, period="2026-01")
    newest = invoice_for(user, period="2026-02")
    newest_id = newest.id
    db.session.delete(newest)  # a draft: as the billing run deletes one that has nothing left to bill
    db.session.commit()
    assert count(InvoiceLine, InvoiceLine.invoice_id == newest_id) == 0
    return newest_id, invoice_for(user, period="2026-03").id


@pytest.mark.parametrize(
    "delete_newest",
    [delete_newest_user, delete_newest_deployment, delete_newest_command, delete_newest_invoice],
    ids=["user", "deployment", "command", "invoice"],
)
def test_a_deleted_newest_id_is_never_given_again(any_app, delete_newest):
    deleted_id, next_id = delete_newest()
    assert next_id > deleted_id


def test_deleting_a_draft_invoice_deletes_its_lines_in_the_database(any_app):
    invoice = invoice_for(make_user())
    db.session.execute(delete(Invoice).where(Invoice.id == invoice.id))
    db.session.commit()
    assert count(InvoiceLine) == 0


# history refuses the delete of what it refers to


def history_of_user(user, plan) -> None:
    deployment_of(user, plan)


def commands_of_user(user, plan) -> None:
    deployment = deployment_of(make_user(), plan)
    command_on(deployment, issuer=user)  # an admin's command on someone else's deployment


def invoice_of_user(user, plan) -> None:
    invoice_for(user)


def usage_of_user(user, plan) -> None:
    usage_event_of(user)


def daily_usage_of_user(user, plan) -> None:
    metric = metric_of(plan)
    db.session.add(UsageDaily(user_id=user.id, plan_id=plan.id, metric_id=metric.id, day="2026-01-01", value=1.0))
    db.session.commit()


def payment_recorded_by(user, plan) -> None:
    invoice = invoice_for(make_user())
    payment = Payment(invoice=invoice, amount=100, method="other", reference="r-1", paid_on=date(2026, 1, 5))
    payment.recorded_by_id = user.id
    db.session.add(payment)
    db.session.commit()


USER_HISTORY = [
    history_of_user,
    commands_of_user,
    invoice_of_user,
    usage_of_user,
    daily_usage_of_user,
    payment_recorded_by,
]


@pytest.mark.parametrize("history", USER_HISTORY, ids=lambda f: f.__name__)
def test_deleting_a_user_with_history_is_refused_and_the_history_kept(any_app, history):
    user, plan = make_user(), make_plan()
    history(user, plan)
    before = {model: count(model) for model in (ServiceDeployment, ServiceCommand, Invoice, UsageEvent, UsageDaily)}

    refused(delete(User).where(User.id == user.id))
    with pytest.raises(IntegrityError):  # the ORM neither deletes nor nulls the history first
        db.session.delete(db.session.get(User, user.id))
        db.session.commit()
    db.session.rollback()

    assert db.session.get(User, user.id) is not None
    assert {model: count(model) for model in before} == before


def test_deleting_a_user_takes_their_api_keys_and_memberships(any_app):
    from app.models import ApiKey, Group

    user = make_user()
    group = Group(name="team", members=[user], account=user)
    db.session.add_all([group, ApiKey(user=user, name="k", key_hash="0" * 64, prefix="00000000")])
    db.session.commit()
    db.session.execute(delete(User).where(User.id == user.id))
    db.session.commit()
    db.session.expire_all()
    assert count(ApiKey) == 0
    assert db.session.get(Group, group.id).account_id is None and db.session.get(Group, group.id).members == []


def deployed(plan) -> None:
    deployment_of(make_user(), plan)


def commanded(plan) -> None:
    command_on(deployment_of(make_user(), plan))


def invoiced(plan) -> None:
    invoice_for(make_user(), plan)


def billed_metric(plan) -> None:
    metric = metric_of(plan)
    invoice = invoice_for(make_user())
    invoice.lines[0].metric_id = metric.id
    db.session.commit()


def used(plan) -> None:
    usage_event_of(make_user(), plan)


PLAN_HISTORY = [deployed, commanded, invoiced, billed_metric, used]


@pytest.mark.parametrize("history", PLAN_HISTORY, ids=lambda f: f.__name__)
def test_deleting_a_plan_with_history_is_refused_by_the_database(any_app, history):
    plan = make_plan("used")
    history(plan)
    refused(delete(ServicePlan).where(ServicePlan.id == plan.id))
    assert db.session.get(ServicePlan, plan.id) is not None
    assert count(ServiceConfiguration, ServiceConfiguration.plan_id == plan.id) == 1


@pytest.mark.parametrize("history", PLAN_HISTORY, ids=lambda f: f.__name__)
def test_removing_a_plan_with_history_retires_it(any_app, history):
    plan = make_plan("used")
    history(plan)
    result = any_app.test_cli_runner().invoke(args=["deleteservice", "--service", "used", "--force"])
    assert result.exit_code == 0 and "used: retired (its history is kept)" in result.output, result.output
    db.session.expire_all()
    plan = db.session.get(ServicePlan, plan.id)
    assert plan is not None and plan.active is False and plan.retired_at is not None


def test_deployments_and_commands_with_history_are_refused_too(any_app):
    command = command_on(deployment_of(make_user(), make_plan()))
    retry = command_on(command.deployment)
    retry.retry_of = command
    db.session.commit()
    task_of(command)
    refused(delete(ServiceDeployment).where(ServiceDeployment.id == command.deployment_id))
    refused(delete(ServiceCommand).where(ServiceCommand.id == command.id))  # its task, and its retry
    refused(delete(ServiceConfiguration).where(ServiceConfiguration.id == command.configuration_id))
    with pytest.raises(IntegrityError):  # the ORM leaves the commands alone rather than nulling them
        db.session.delete(db.session.get(ServiceDeployment, command.deployment_id))
        db.session.commit()
    db.session.rollback()
    assert count(ServiceDeployment) == 1 and count(ServiceCommand) == 2 and count(ServiceTask) == 1


def test_the_app_asks_the_schema_what_refuses_a_delete(any_app):
    plan = make_plan("used")
    assert refusing_references(plan) == []
    metric_of(plan)
    assert refusing_references(plan) == []  # its metric goes with it
    command = command_on(deployment_of(make_user(), plan))
    assert refusing_references(command) == []
    task_of(command)
    retry = command_on(command.deployment)
    retry.retry_of = command
    db.session.commit()
    assert refusing_references(retry) == []  # what it refers to does not hold it; its own tasks would
    assert refusing_references(command) == ["service_commands.retry_of_id", "service_tasks.command_id"]
    assert refusing_references(plan) == [
        "service_commands.configuration_id",
        "service_commands.plan_id",
        "service_deployments.configuration_id",
        "service_deployments.plan_id",
    ]


def test_a_command_goes_only_with_its_retries(any_app):
    command = command_on(deployment_of(make_user(), make_plan()))
    retry = command_on(command.deployment)
    retry.retry_of = command
    db.session.commit()
    refused(delete(ServiceCommand).where(ServiceCommand.id == command.id))
    db.session.execute(delete(ServiceCommand))  # both in one statement, as dropping the table does
    db.session.commit()
    assert count(ServiceCommand) == 0


def test_a_finalized_invoice_and_its_payments_stay(any_app):
    user = make_user()
    invoice = invoice_for(user)
    db.session.add(Payment(invoice=invoice, amount=100, method="other", reference="r-1", paid_on=date(2026, 1, 5)))
    db.session.commit()
    # a draft with a payment: the payment refuses it (the trigger refuses deleting payments themselves)
    refused(delete(Invoice).where(Invoice.id == invoice.id))
    invoice = db.session.get(Invoice, invoice.id)
    invoice.status, invoice.number = InvoiceStatus.OPEN.value, "2026-000001"
    db.session.commit()
    with pytest.raises(Exception, match="a finalized invoice cannot be deleted"):
        db.session.execute(delete(Invoice).where(Invoice.id == invoice.id))
    db.session.rollback()
    assert count(Invoice) == 1 and count(InvoiceLine) == 1 and count(Payment) == 1
