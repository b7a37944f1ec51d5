"""``/invoices``: the user's own invoices (status, balance, PDF) and a preview of the current month."""

from flask import Blueprint, abort, current_app, render_template
from flask_login import current_user, login_required
from sqlalchemy import func, select

from ..billing.invoices import BillingError, compute, period_of, store_pdf
from ..extensions import db
from ..models import Invoice, InvoiceStatus, Payment
from ..models.types import utcnow, valid_id

bp = Blueprint("billing", __name__)


@bp.route("/invoices")
@login_required
def index():
    """The user's invoices, newest first, and what the current month comes to so far."""
    user = current_user._get_current_object()
    invoices = db.session.scalars(
        select(Invoice)
        .where(Invoice.user_id == user.id, Invoice.status != InvoiceStatus.DRAFT)
        .order_by(Invoice.period.desc(), Invoice.id.desc())
    ).all()
    # what was paid of each, in one statement
    paid = dict(
        db.session.execute(
            select(Payment.invoice_id, func.sum(Payment.amount))
            .where(Payment.invoice_id.in_([invoice.id for invoice in invoices]))
            .group_by(Payment.invoice_id)
        ).all()
    )
    now = utcnow()
    period = period_of(now)
    # so far: base fees up to this moment, usage recorded up to now (today's so far): not the whole month
    lines, totals = compute(user, period, until=now)
    return render_template(
        "billing/index.html",
        invoices=[
            (invoice, invoice.total - paid.get(invoice.id, 0) if invoice.status == InvoiceStatus.OPEN else 0)
            for invoice in invoices
        ],
        period=period,
        as_of=now,
        preview=lines,
        totals=totals,
        currency=current_app.config["BILLING_CURRENCY"],
    )


@bp.route("/invoices/<int:invoice_id>.pdf")
@login_required
def pdf(invoice_id: int):
    """The invoice's PDF as it was stored when finalized (one's own; admins any); rendered and stored now if
    the worker that finalized it stopped before storing it."""
    invoice = db.session.get(Invoice, invoice_id) if valid_id(invoice_id) else None
    if (
        invoice is None
        or invoice.status == InvoiceStatus.DRAFT
        or (invoice.user_id != current_user.id and not current_user.admin)
    ):
        abort(404)
    try:
        data = store_pdf(invoice)
        db.session.commit()
    except BillingError:  # logged with its traceback where it failed
        db.session.rollback()
        abort(503, "The PDF of this invoice cannot be made right now. Please try again later.")
    response = current_app.response_class(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="invoice-{invoice.number}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
