"""Invoices: what a user owes for a month, computed from deployments and daily usage, then finalized.

A period is a half-open UTC calendar month ``[start, end)``, named ``YYYY-MM``. Lines: each deployment's
plan base fee prorated by the time it existed in the period (install to removal), and each priced metric's
usage beyond its included quantity (graduated tiers apply); tax; totals. Amounts are Decimal until each
line's one half-up rounding. ``run_invoices`` makes one invoice per user and period and finalizes it:
running it again creates nothing new (the (user, period) key and the status decide).
"""

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import (
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    Metric,
    Phase,
    ServiceCommand,
    ServiceDeployment,
    ServicePlan,
    Status,
    UsageDaily,
    User,
)
from ..models.types import utcnow
from .identity import finalize_refusal
from .pricing import decimal, parse_tiers, prorated, round_minor, tax_amount, tax_for, usage_amount

SECONDS_PER_DAY = Decimal(86400)


class BillingError(ValueError):
    """A billing action that cannot be done; the message says why."""


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` -> [first second of the month, first second of the next) in UTC."""
    try:
        year, month = (int(part) for part in period.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
    except ValueError:
        raise BillingError(f"{period!r} is not a month (YYYY-MM)") from None
    days = calendar.monthrange(year, month)[1]
    return start, start + timedelta(days=days)


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def previous_period(moment: datetime) -> str:
    """The month before ``moment``'s."""
    return period_of(moment.replace(day=1) - timedelta(days=1))


@dataclass
class Line:
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: int
    plan_id: int | None = None
    metric_id: int | None = None


def _fmt(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if text not in ("-0",) else "0"


def base_lines(user: User, start: datetime, end: datetime, until: datetime | None = None) -> list[Line]:
    """Each deployment's base fee for the part of the period it existed (up to ``until``, when given: a
    month's fee prorated over the whole period's days, for the time up to that moment)."""
    days_in_period = (end - start).days
    end = min(end, until) if until is not None else end
    if end <= start:
        return []
    installed = (
        select(ServiceCommand.deployment_id, func.min(ServiceCommand.finished_at).label("since"))
        .where(
            ServiceCommand.user_id == user.id,  # this user's commands only: not a scan of everyone's per invoice
            ServiceCommand.phase == Phase.INSTALL.value,
            ServiceCommand.status == Status.COMPLETED,
        )
        .group_by(ServiceCommand.deployment_id)
        .subquery()
    )
    rows = db.session.execute(
        select(ServiceDeployment.id, ServicePlan, installed.c.since, ServiceDeployment.removed_at)
        .join(ServicePlan, ServicePlan.id == ServiceDeployment.plan_id)
        .join(installed, installed.c.deployment_id == ServiceDeployment.id)
        .where(
            ServiceDeployment.user_id == user.id,
            ServicePlan.base_fee > 0,
            installed.c.since < end,
            or_(ServiceDeployment.removed_at.is_(None), ServiceDeployment.removed_at > start),
        )
        .order_by(ServiceDeployment.id)
    ).all()
    lines = []
    for deployment_id, plan, since, removed_at in rows:
        lo, hi = max(since, start), min(removed_at or end, end)
        days = Decimal((hi - lo).total_seconds()) / SECONDS_PER_DAY
        amount = round_minor(prorated(plan.base_fee, days, days_in_period))
        lines.append(
            Line(
                "base",
                f"{plan.title or plan.name}, deployment {deployment_id}: "
                f"{lo:%Y-%m-%d} to {hi - timedelta(seconds=1):%Y-%m-%d}",
                days.quantize(Decimal("0.0001")),
                f"days of {days_in_period}",
                Decimal(plan.base_fee),  # a month's fee: the line is quantity / days_in_period of it
                amount,
                plan_id=plan.id,
            )
        )
    return lines


def usage_lines(user: User, start: datetime, end: datetime, until: datetime | None = None) -> list[Line]:
    """Each priced metric's usage in the period beyond what is included (up to ``until``'s day, when given:
    the day in progress with what it has recorded so far)."""
    end = min(end, until) if until is not None else end
    if end <= start:
        return []
    # the last day with a moment before ``end``: the period's last day, or ``until``'s own
    first, last = start.date().isoformat(), (end - timedelta(microseconds=1)).date().isoformat()
    rows = db.session.execute(
        select(Metric, func.sum(UsageDaily.value), func.max(UsageDaily.value))
        .join(UsageDaily, UsageDaily.metric_id == Metric.id)
        .where(UsageDaily.user_id == user.id, UsageDaily.day >= first, UsageDaily.day <= last)
        .group_by(Metric)
        .order_by(Metric.plan_id, Metric.name)
    ).all()
    lines = []
    for metric, total, peak in rows:
        quantity = decimal(peak if metric.aggregation == "max" else total, f"usage of {metric.name}")
        unit_price, included = decimal(metric.unit_price, "unit_price"), decimal(metric.included, "included")
        tiers = parse_tiers(metric.tiers)
        if unit_price == 0 and not tiers:
            continue
        amount = round_minor(usage_amount(quantity, included, unit_price, tiers))
        if amount == 0:
            continue
        billable = max(quantity - included, Decimal(0))
        described = f"{metric.plan.title or metric.plan.name}: {metric.name}"
        if included:
            described += f" ({_fmt(quantity)} used, {_fmt(included)} included)"
        average = (Decimal(amount) / billable) if billable else unit_price
        lines.append(
            Line(
                "usage",
                described,
                billable,
                metric.unit,
                unit_price if not tiers else average,
                amount,
                plan_id=metric.plan_id,
                metric_id=metric.id,
            )
        )
    return lines


def compute(user: User, period: str, until: datetime | None = None) -> tuple[list[Line], dict]:
    """The lines and the totals (subtotal, tax, total, tax decision) of a user's period.

    ``until``: only what was used before that moment (a preview of the month so far): base fees for the
    time up to it, to the second, as the run prorates them; usage recorded up to then, its day included.
    Without it, or at or after the period's end: the whole period, as the monthly run bills it.
    """
    start, end = period_bounds(period)
    lines = base_lines(user, start, end, until) + usage_lines(user, start, end, until)
    config = current_app.config
    decision = tax_for(
        user.country,
        user.tax_id,
        config["BILLING_OPERATOR_COUNTRY"],
        decimal(config["BILLING_TAX_RATE"], "BILLING_TAX_RATE"),
        {
            country: decimal(rate, f"BILLING_TAX_RATES[{country}]")
            for country, rate in config["BILLING_TAX_RATES"].items()
        },
    )
    subtotal = sum(line.amount for line in lines)
    tax = tax_amount(subtotal, decision)
    return lines, {"subtotal": subtotal, "tax": tax, "total": subtotal + tax, "decision": decision}


def write_draft(user: User, period: str) -> Invoice | None:
    """Create or refresh the user's draft for the period; None (and no invoice) when nothing is billable.

    A finalized invoice of the period is left as it is and returned.
    """
    existing = db.session.scalar(select(Invoice).where(Invoice.user_id == user.id, Invoice.period == period))
    if existing is not None and existing.status != InvoiceStatus.DRAFT:
        return existing
    lines, totals = compute(user, period)
    if not lines:
        if existing is not None:
            db.session.delete(existing)
        return None
    invoice = existing or Invoice(
        user=user, period=period, currency=current_app.config["BILLING_CURRENCY"], status=InvoiceStatus.DRAFT.value
    )
    if existing is None:
        db.session.add(invoice)
    invoice.lines = [
        InvoiceLine(
            position=number,
            kind=line.kind,
            description=line.description[:300],
            quantity=_fmt(line.quantity),
            unit=line.unit,
            unit_price=_fmt(line.unit_price),
            amount=line.amount,
            plan_id=line.plan_id,
            metric_id=line.metric_id,
        )
        for number, line in enumerate(lines, start=1)
    ]
    decision = totals["decision"]
    invoice.subtotal, invoice.tax, invoice.total = totals["subtotal"], totals["tax"], totals["total"]
    invoice.tax_rate, invoice.tax_note, invoice.reverse_charge = (
        _fmt(decision.rate),
        decision.note,
        decision.reverse_charge,
    )
    return invoice


def next_number(year: int) -> str:
    """The next gapless number of the year, taken in the caller's transaction (a rollback gives it back)."""
    for _ in range(3):
        taken = db.session.scalar(
            update(InvoiceCounter)
            .where(InvoiceCounter.year == year)
            .values(last=InvoiceCounter.last + 1)
            .returning(InvoiceCounter.last)
        )
        if taken is not None:
            return f"{year}-{taken:06d}"
        try:
            with db.session.begin_nested():
                db.session.add(InvoiceCounter(year=year, last=1))
            return f"{year}-{1:06d}"
        except IntegrityError:
            continue  # another process made the year's counter: take from it
    raise BillingError(f"could not take an invoice number for {year}")


def check_identity() -> None:
    """Refuse (BillingError) to finalize while production still has placeholder billing details."""
    refusal = finalize_refusal(current_app.config)
    if refusal:
        raise BillingError(refusal)


def finalize(invoice: Invoice, now: datetime | None = None) -> Invoice:
    """draft -> open: the number, the customer's details as they are now, the dates. The caller commits (a
    rollback gives the number back), then stores the PDF with ``store_pdf``. Refused in production while
    the company details or payment instructions are placeholders (``check_identity``).

    The number's counter row stays locked until that commit, so the PDF (100 ms and more) is rendered after
    it, in its own transaction, from the invoice as committed (lines, customer snapshot, dates), as a rule
    seconds later.
    """
    if invoice.status != InvoiceStatus.DRAFT:
        raise BillingError(f"invoice {invoice} is {invoice.status} already")
    check_identity()
    now = now or utcnow()
    user = invoice.user
    invoice.number = next_number(now.year)
    invoice.customer = {
        "name": user.full_name,
        "email": user.email,
        "userid": user.userid,
        "company": user.company,
        "address": user.billing_address,
        "country": user.country,
        "tax_id": user.tax_id,
    }
    invoice.issued_at = now
    invoice.due_at = now + timedelta(days=current_app.config["BILLING_DUE_DAYS"])
    invoice.status = InvoiceStatus.OPEN.value
    return invoice


def store_pdf(invoice: Invoice) -> bytes:
    """The finalized invoice's PDF: rendered and stored with its sha256 the first time, as stored after.

    The database takes the PDF once (from NULL); a second renderer racing this one stores nothing and gets
    the stored one. A render that fails is a ``BillingError`` (logged with its traceback); nothing is
    stored and the invoice stays as it was. The caller commits.
    """
    _store(invoice)
    if invoice.pdf is None:
        raise BillingError(f"the PDF of invoice {invoice.number} is not there yet")
    return invoice.pdf


def _store(invoice: Invoice) -> bool:
    """Render and store the PDF if it has none; True when this call stored it."""
    if invoice.status == InvoiceStatus.DRAFT:
        raise BillingError(f"invoice {invoice} is a draft: it has no PDF")
    if invoice.pdf is not None:
        return False
    from .pdf import invoice_pdf

    try:
        data, sha256 = invoice_pdf(invoice)
    except Exception as exc:  # noqa: BLE001 -- the template or WeasyPrint: reported, the caller goes on
        current_app.logger.exception("the PDF of invoice %s could not be rendered", invoice.number)
        raise BillingError(f"the PDF of invoice {invoice.number} could not be rendered ({exc})") from exc
    stored = db.session.execute(
        update(Invoice)
        .where(Invoice.id == invoice.id, Invoice.pdf.is_(None))
        .values(pdf=data, pdf_sha256=sha256)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(invoice, ["pdf", "pdf_sha256"])
    return stored == 1


def billable(period: str):
    """Users with a deployment live in the period or usage in it: everyone else gets no invoice."""
    start, end = period_bounds(period)
    with_deployments = select(ServiceDeployment.user_id).where(
        ServiceDeployment.created_at < end,
        or_(ServiceDeployment.removed_at.is_(None), ServiceDeployment.removed_at > start),
    )
    with_usage = select(UsageDaily.user_id).where(
        UsageDaily.day >= start.date().isoformat(), UsageDaily.day < end.date().isoformat()
    )
    return or_(User.id.in_(with_deployments), User.id.in_(with_usage))


def billable_users(period: str):
    return select(User).where(billable(period)).order_by(User.id)


def check_ended(period: str, now: datetime) -> None:
    if period_bounds(period)[1] > now:
        raise BillingError(f"{period} has not ended yet: its invoices are made from the 1st of the next month")


def run_invoices(period: str, now: datetime | None = None, user_ids: list[int] | None = None) -> dict:
    """One finalized invoice per billable user of the (ended) period (or of ``user_ids``); again: nothing new."""
    now = now or utcnow()
    check_ended(period, now)
    check_identity()  # before any draft is written: each finalize would refuse
    made = existing = nothing = 0
    query = billable_users(period)
    if user_ids is not None:
        query = query.where(User.id.in_(user_ids))
    for user in db.session.scalars(query):
        invoice = write_draft(user, period)
        if invoice is None:
            nothing += 1
        elif invoice.status != InvoiceStatus.DRAFT:
            existing += 1
        else:
            db.session.flush()
            finalize(invoice, now)
            made += 1
        db.session.commit()
    pdfs, failures = render_missing(period, user_ids)
    return {
        "period": period,
        "finalized": made,
        "existing": existing,
        "nothing billable": nothing,
        "pdfs": pdfs,
        "pdf failures": failures,
    }


def render_missing(period: str, user_ids: list[int] | None = None) -> tuple[int, int]:
    """Store the PDF of each finalized invoice of the period that has none yet (just finalized, or left so
    by a worker that died between the two commits); one commit each. (stored, failed to render)."""
    query = select(Invoice.id).where(
        Invoice.period == period, Invoice.status != InvoiceStatus.DRAFT.value, Invoice.pdf.is_(None)
    )
    if user_ids is not None:
        query = query.where(Invoice.user_id.in_(user_ids))
    stored = failed = 0
    for invoice_id in db.session.scalars(query.order_by(Invoice.id)).all():
        try:
            stored += _store(db.session.get(Invoice, invoice_id))
            db.session.commit()
        except BillingError:  # logged; the others go on, and the next run or a download tries it again
            db.session.rollback()
            failed += 1
    return stored, failed
