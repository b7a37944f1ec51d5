"""Payments and the states an open invoice moves on to: paid (its balance reached zero), void, uncollectible."""

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Invoice, InvoiceStatus, Payment, PaymentMethod
from ..models.types import utcnow
from .invoices import BillingError

MAX_REFERENCE = 200


def paid_amount(invoice: Invoice) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.invoice_id == invoice.id)
    )


def balance(invoice: Invoice) -> int:
    """What is still owed (0 for drafts and closed invoices)."""
    if invoice.status != InvoiceStatus.OPEN:
        return 0
    return invoice.total - paid_amount(invoice)


def record_payment(
    invoice: Invoice, amount: int, method: str, reference: str, paid_on: date, recorded_by=None, note: str = ""
) -> Payment:
    """Record a payment of an open invoice; the invoice is paid when its balance reaches zero. Commits.

    Refused: a closed or draft invoice, an amount of 0 or more than the balance, an unknown method, a
    reference recorded before (the same transfer twice).
    """
    if invoice.status != InvoiceStatus.OPEN:
        raise BillingError(f"invoice {invoice} is {invoice.status}: only open invoices take payments")
    if method not in {m.value for m in PaymentMethod}:
        raise BillingError(f"method: {method!r} is not one of {', '.join(m.value for m in PaymentMethod)}")
    reference = (reference or "").strip()
    if not reference or len(reference) > MAX_REFERENCE:
        raise BillingError(f"reference: 1 to {MAX_REFERENCE} characters (the bank's or the provider's)")
    owed = balance(invoice)
    if not 0 < amount <= owed:
        raise BillingError(f"amount: must be above 0 and at most the balance, {owed / 100:.2f} {invoice.currency}")
    payment = Payment(
        invoice_id=invoice.id,
        amount=amount,
        method=method,
        reference=reference,
        paid_on=paid_on,
        recorded_by_id=recorded_by.id if recorded_by is not None else None,
        note=note,
    )
    db.session.add(payment)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise BillingError(f"reference: a payment with the reference {reference!r} is recorded already") from None
    if owed - amount == 0:
        invoice.status, invoice.paid_at = InvoiceStatus.PAID.value, utcnow()
    db.session.commit()
    return payment


def close(invoice: Invoice, status: str) -> Invoice:
    """open -> void (a mistake: reissue a new invoice) or uncollectible (given up). Commits."""
    if status not in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        raise BillingError(f"{status!r}: an invoice is closed as void or uncollectible")
    if invoice.status != InvoiceStatus.OPEN:
        raise BillingError(f"invoice {invoice} is {invoice.status}: only an open invoice can be closed")
    if status == InvoiceStatus.VOID and paid_amount(invoice):
        raise BillingError(f"invoice {invoice} has payments: it cannot be voided")
    invoice.status, invoice.closed_at = status, utcnow()
    db.session.commit()
    return invoice
