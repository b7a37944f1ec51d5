"""Payment reminders (daily): an overdue open invoice is reminded by email, with its PDF, once at each of
``REMINDER_DAYS`` days after its due date."""

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..mail import MailError, send_mail
from ..models import Invoice, InvoiceStatus
from ..models.types import utcnow
from .invoices import BillingError, store_pdf
from .payments import balance


def reminder_due(invoice: Invoice, now: datetime, days: list[int]) -> bool:
    """Whether a threshold passed since the last reminder."""
    passed = [invoice.due_at + timedelta(days=d) for d in days if now >= invoice.due_at + timedelta(days=d)]
    return bool(passed) and (invoice.reminded_at is None or invoice.reminded_at < passed[-1])


def send_reminders(now: datetime | None = None) -> dict:
    now = now or utcnow()
    days = sorted(int(d) for d in current_app.config["REMINDER_DAYS"])
    sent = failed = 0
    overdue = db.session.scalars(
        select(Invoice).where(Invoice.status == InvoiceStatus.OPEN.value, Invoice.due_at < now).order_by(Invoice.id)
    ).all()
    for invoice in overdue:
        if not reminder_due(invoice, now, days):
            continue
        try:
            pdf = store_pdf(invoice)
            db.session.commit()
        except BillingError as exc:  # logged where it failed; the other reminders go on, this one tomorrow
            db.session.rollback()
            current_app.logger.warning("reminder for %s not sent: %s", invoice.number, exc)
            failed += 1
            continue
        try:
            send_mail(
                invoice.customer.get("email") or invoice.user.email,
                f"Reminder: invoice {invoice.number} is overdue",
                "mail/reminder.txt",
                attachments=[(f"invoice-{invoice.number}.pdf", pdf, "application/pdf")],
                invoice=invoice,
                owed=balance(invoice),
                days_overdue=(now - invoice.due_at).days,
            )
        except MailError as exc:
            current_app.logger.warning("reminder for %s not sent: %s", invoice.number, exc)
            failed += 1
            continue
        invoice.reminded_at = now
        db.session.commit()
        sent += 1
    return {"reminders sent": sent, "failed": failed}
