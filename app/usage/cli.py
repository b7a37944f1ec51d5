"""Usage commands: ``flask ingestusage PATH|-`` and ``flask rollupusage``."""

import json
from datetime import date

import click
from flask import Flask

from ..cli import db_command
from .logfiles import BATCH, ingest_path


@click.command("ingestusage")
@click.argument("path")
@click.option("--batch", default=BATCH, type=click.IntRange(1, 100_000), help="Events per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@db_command
def ingestusage(path, batch, as_json):
    """Record the usage events of a JSON-lines log file (or - for standard input), each line once.

    Re-running reads only what was appended since (a checkpoint per file), also across a log rotation.
    Malformed lines are counted and listed with their line numbers; they do not stop the run.
    """
    if path != "-":
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    report = ingest_path(path, batch)
    if as_json:
        click.echo(json.dumps({**report.__dict__, "errors": [list(e) for e in report.errors]}))
    else:
        click.echo(
            f"{report.read} lines read from {', '.join(report.files)}: {report.inserted} new events, "
            f"{report.duplicates} duplicates, {report.malformed} malformed, {report.late} late"
        )
        for name, line, reason in report.errors:
            click.echo(f"  {name}:{line}: {reason}")
        if report.malformed > len(report.errors):
            click.echo(f"  ... and {report.malformed - len(report.errors)} more")


def parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day (YYYY-MM-DD)") from None


@click.command("rollupusage")
@click.option("--from", "start", default=None, help="First day to recompute (YYYY-MM-DD); default: what changed.")
@click.option("--to", "end", default=None, help="Last day to recompute (YYYY-MM-DD); default: today.")
@db_command
def rollupusage(start, end):
    """Recompute the daily usage of every metric (idempotent): what changed since the last run, or a range."""
    from .rollup import rollup

    result = rollup(start=parse_day(start), end=parse_day(end))
    click.echo(", ".join(f"{key}: {value}" for key, value in result.items()))


def register(app: Flask) -> None:
    app.cli.add_command(ingestusage)
    app.cli.add_command(rollupusage)
