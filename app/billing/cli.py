"""``flask invoices run [--period YYYY-MM]``: the monthly invoice run by hand (the scheduler runs it on the 1st)."""

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..cli import db_command
from ..models.types import utcnow
from .identity import placeholder_warnings
from .invoices import BillingError, previous_period, run_invoices

invoices = AppGroup("invoices", help="Invoices: the monthly run.")


@invoices.command("run")
@click.option("--period", default=None, help="The month to invoice, YYYY-MM (default: the last one).")
@db_command
def run(period):
    """Make and finalize one invoice per billable user of the period; running it again makes nothing new."""
    period = period or previous_period(utcnow())
    warn_placeholders()
    try:
        result = run_invoices(period)
    except BillingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{result['period']}: {result['finalized']} invoices finalized, {result['existing']} existing, "
        f"{result['nothing billable']} users with nothing billable, {result['pdfs']} PDFs stored"
    )
    if result["pdf failures"]:
        click.echo(
            f"{result['pdf failures']} PDFs could not be rendered (see the log); the next run tries them again",
            err=True,
        )
        raise SystemExit(1)


def warn_placeholders() -> None:
    """Print each placeholder left in the billing details, in red on stderr, before anything is invoiced."""
    warnings = placeholder_warnings(current_app.config)
    if not warnings:
        return
    click.secho("WARNING: invoices go out with placeholder billing details:", fg="red", bold=True, err=True)
    for warning in warnings:
        click.secho(f"WARNING:   {warning}", fg="red", bold=True, err=True)


def register(app: Flask) -> None:
    app.cli.add_command(invoices)
