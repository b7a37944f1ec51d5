"""Foreign keys say what a delete does; SQLite enforces them and never reuses the ids the outside world holds

History (deployments, commands, tasks, invoices, payments, usage) refuses the delete of the user, plan,
configuration or metric it refers to (RESTRICT); a draft's lines go with it, and a metric's daily roll-up with its
plan (CASCADE). On SQLite the tables are rebuilt (batch, with foreign keys off: migrations/env.py), and the ones
whose ids are in URLs, API clients and history get AUTOINCREMENT, so a deleted row's id is never given again.

SQLite did not enforce foreign keys before: rows a rule would have deleted or nulled (the metrics of a deleted
plan) are deleted or nulled now; history that refers to nothing stops the upgrade, listed, before any change.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:00:00

"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# (table, column, referred table): (the rule before, the rule now); None: none declared (NO ACTION)
RULES = {
    ("service_deployments", "user_id", "users"): (None, "RESTRICT"),
    ("service_deployments", "plan_id", "service_plans"): (None, "RESTRICT"),
    ("service_deployments", "configuration_id", "service_configurations"): (None, "RESTRICT"),
    ("service_commands", "issuer_id", "users"): (None, "RESTRICT"),
    ("service_commands", "user_id", "users"): (None, "RESTRICT"),
    ("service_commands", "plan_id", "service_plans"): (None, "RESTRICT"),
    ("service_commands", "deployment_id", "service_deployments"): (None, "RESTRICT"),
    ("service_commands", "configuration_id", "service_configurations"): (None, "RESTRICT"),
    # checked at the end of the statement: a command may go with its retries (SQLite checks RESTRICT row by row)
    ("service_commands", "retry_of_id", "service_commands"): (None, "NO ACTION"),
    ("service_tasks", "command_id", "service_commands"): (None, "RESTRICT"),
    ("service_tasks", "deployment_id", "service_deployments"): (None, "RESTRICT"),
    ("invoices", "user_id", "users"): (None, "RESTRICT"),
    ("invoice_lines", "invoice_id", "invoices"): (None, "CASCADE"),
    ("invoice_lines", "plan_id", "service_plans"): (None, "RESTRICT"),
    ("invoice_lines", "metric_id", "metrics"): (None, "RESTRICT"),
    ("payments", "invoice_id", "invoices"): (None, "RESTRICT"),
    ("payments", "recorded_by_id", "users"): (None, "RESTRICT"),
    ("usage_events", "user_id", "users"): ("CASCADE", "RESTRICT"),
    ("usage_events", "plan_id", "service_plans"): (None, "RESTRICT"),
    ("usage_daily", "user_id", "users"): ("CASCADE", "RESTRICT"),
    ("usage_daily", "plan_id", "service_plans"): (None, "CASCADE"),
}
NEVER_REUSED = ("service_plans", "users", "service_deployments", "service_commands", "invoices")
LISTED = 20  # history rows named when they stop the upgrade


def fk_name(table, column, referred):
    return f"fk_{table}_{column}_{referred}"  # the naming convention's (app/extensions.py)


def upgrade():
    apply({key: now for key, (_, now) in RULES.items()}, autoincrement=True)


def downgrade():
    apply({key: before for key, (before, _) in RULES.items()}, autoincrement=False)


def apply(rules, autoincrement):
    if op.get_context().dialect.name != "sqlite":
        for (table, column, referred), rule in rules.items():
            op.drop_constraint(fk_name(table, column, referred), table, type_="foreignkey")
            op.create_foreign_key(fk_name(table, column, referred), table, referred, [column], ["id"], ondelete=rule)
        return
    bind = op.get_bind()
    if not bind.connection.dbapi_connection.in_transaction:
        # pysqlite begins a transaction only before DML: begin it here, so the rebuild is one, its DDL included
        bind.exec_driver_sql("BEGIN")
    if autoincrement:
        settle_what_sqlite_did_not_enforce(bind, rules)
    # a rebuilt table loses its triggers, and renaming the copy fails on a trigger naming a dropped table
    triggers = bind.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name").all()
    for name, _ in triggers:
        bind.exec_driver_sql(f'DROP TRIGGER "{name}"')
    for table in sorted({table for table, _, _ in rules} | set(NEVER_REUSED)):
        kwargs = {"sqlite_autoincrement": autoincrement and table in NEVER_REUSED}
        with op.batch_alter_table(table, recreate="always", table_kwargs=kwargs) as batch:
            for (owner, column, referred), rule in rules.items():
                if owner == table:
                    batch.drop_constraint(fk_name(table, column, referred), type_="foreignkey")
                    batch.create_foreign_key(
                        fk_name(table, column, referred), referred, [column], ["id"], ondelete=rule
                    )
    for _, sql in triggers:
        bind.exec_driver_sql(sql)
    violations = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if violations:
        raise RuntimeError(f"foreign keys broken by the rebuild of the tables: {violations[:LISTED]}")


def settle_what_sqlite_did_not_enforce(bind, rules):
    """Apply the rules to rows whose parent is gone: delete or null them, or refuse (history) before any change."""
    while True:
        refused, settled = [], 0
        for table, rowid, parent, fkid in bind.exec_driver_sql("PRAGMA foreign_key_check").all():
            key = next(k for k in bind.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")').all() if k[0] == fkid)
            column, declared = key[3], key[6]
            rule = rules.get((table, column, parent), declared)
            # the names are the schema's own, from SQLite's pragmas, not input
            if rule == "CASCADE":
                bind.exec_driver_sql(f'DELETE FROM "{table}" WHERE rowid = ?', (rowid,))  # noqa: S608 -- see above
            elif rule == "SET NULL":
                bind.exec_driver_sql(f'UPDATE "{table}" SET "{column}" = NULL WHERE rowid = ?', (rowid,))  # noqa: S608
            else:
                row = f'SELECT "{column}" FROM "{table}" WHERE rowid = ?'  # noqa: S608 -- the schema's names
                value = bind.exec_driver_sql(row, (rowid,)).scalar()
                refused.append(f"{table}.{column} = {value} (rowid {rowid})")
                continue
            settled += 1
        if refused:
            more = f" and {len(refused) - LISTED} more" if len(refused) > LISTED else ""
            raise RuntimeError(
                f"cannot enforce foreign keys: {len(refused)} row(s) of history refer to rows that do not exist "
                f"(table.column = missing id): {'; '.join(refused[:LISTED])}{more}. Nothing was changed: "
                "restore or correct what they refer to, then upgrade again"
            )
        if not settled:  # a deleted row may leave its own children without a parent: until none is left
            return
