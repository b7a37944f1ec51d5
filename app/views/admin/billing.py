"""Invoices and payments in the console: filters, finalize, void, mark uncollectible, record a payment, the PDF.
Neither invoices nor payments can be deleted (the database refuses it too)."""

from datetime import date
from decimal import Decimal, InvalidOperation

from flask import flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from ...billing.format import money
from ...billing.invoices import BillingError, finalize, store_pdf
from ...billing.payments import balance, close, record_payment
from ...extensions import db
from ...models import Invoice, InvoiceStatus, Payment, PaymentMethod
from .base import ConfirmForm, ReadOnlyModelView, when_formatter


def money_formatter(view, context, model, name):
    """Minor units as money with the currency: 3146 -> 31.46 CHF (a payment's is its invoice's)."""
    value = getattr(model, name)
    if value is None:
        return ""
    currency = getattr(model, "currency", None) or getattr(getattr(model, "invoice", None), "currency", "")
    return f"{money(value)} {currency}".strip()


def rate_formatter(view, context, model, name):
    """A tax rate as a percentage: 0.081 -> 8.1%."""
    rate = getattr(model, name)
    return f"{(Decimal(rate) * 100).normalize():f}%" if rate not in (None, "") else ""


def customer_formatter(view, context, model, name):
    """The customer's details as invoiced, as lines: name, company, address, country, VAT number, email."""
    customer = getattr(model, name) or {}
    lines = [
        customer.get("name"),
        customer.get("company"),
        *(customer.get("address") or "").splitlines(),
        customer.get("country"),
        f"VAT {customer['tax_id']}" if customer.get("tax_id") else "",
        customer.get("email"),
    ]
    lines = [line.strip() for line in lines if line and line.strip()]
    if not lines:
        return Markup('<span class="text-muted">{}</span>').format(
            "not yet: taken when the invoice is finalized" if model.status == InvoiceStatus.DRAFT else "none"
        )
    return Markup('<div class="customer">{}</div>').format(Markup("<br>").join(lines))


class InvoiceView(ReadOnlyModelView):
    details_template = "admin/invoice_details.html"
    column_list = ("number", "user", "period", "status", "total", "due_at", "paid_at")
    column_filters = ("status", "period", "user.email", "due_at")
    column_labels = {
        "user.email": "User email",
        "tax_rate": "Tax rate",
        "tax_note": "Tax note",
        "reverse_charge": "Reverse charge",
        "customer": "Customer (as invoiced)",
        "pdf_sha256": "PDF sha256",
    }
    column_searchable_list = ("number",)
    column_sortable_list = ("number", "period", "due_at")
    column_default_sort = ("id", True)
    column_details_list = (
        "number",
        "user",
        "period",
        "status",
        "customer",
        "subtotal",
        "tax_rate",
        "tax_note",
        "reverse_charge",
        "tax",
        "total",
        "issued_at",
        "due_at",
        "paid_at",
        "closed_at",
        "reminded_at",
        "pdf_sha256",
        "created_at",
    )
    column_formatters = {
        "subtotal": money_formatter,
        "tax": money_formatter,
        "total": money_formatter,
        "tax_rate": rate_formatter,
        "customer": customer_formatter,
        **dict.fromkeys(("issued_at", "due_at", "paid_at", "closed_at", "reminded_at", "created_at"), when_formatter),
    }

    def render(self, template, **kwargs):
        if template == self.details_template:
            invoice = kwargs["model"]
            kwargs.update(
                payments=db.session.scalars(
                    select(Payment).where(Payment.invoice_id == invoice.id).order_by(Payment.id)
                ).all(),
                owed=balance(invoice),
                methods=[m.value for m in PaymentMethod],
                action_form=ConfirmForm(formdata=None),
                today=date.today().isoformat(),
            )
        return super().render(template, **kwargs)

    def back(self, invoice):
        return redirect(url_for(".details_view", id=invoice.id))

    @expose("/<int:invoice_id>/finalize", methods=["POST"])
    def finalize_view(self, invoice_id: int):
        invoice = self.load(Invoice, invoice_id)
        if self.confirmed():
            try:
                finalize(invoice)
                db.session.commit()
            except BillingError as exc:
                db.session.rollback()
                flash(str(exc), "error")
                return self.back(invoice)
            flash(f"Invoice {invoice.number} is finalized.", "success")
            try:
                store_pdf(invoice)
                db.session.commit()
            except BillingError as exc:  # finalized all the same: the next run or a download stores the PDF
                db.session.rollback()
                flash(f"{exc}: it is made again at its first download.", "warning")
        return self.back(invoice)

    @expose("/<int:invoice_id>/close/<status>", methods=["POST"])
    def close_view(self, invoice_id: int, status: str):
        invoice = self.load(Invoice, invoice_id)
        if self.confirmed():
            try:
                close(invoice, status)
                flash(f"Invoice {invoice} is {status}.", "success")
            except BillingError as exc:
                db.session.rollback()
                flash(str(exc), "error")
        return self.back(invoice)

    @expose("/<int:invoice_id>/payment", methods=["POST"])
    def payment_view(self, invoice_id: int):
        """Record a payment: amount in major units (12.34), method, a unique reference, the date paid."""
        invoice = self.load(Invoice, invoice_id)
        if not self.confirmed() or self.refused_text("amount", "method", "reference", "paid_on", multi_line=("note",)):
            return self.back(invoice)
        form = request.form
        try:
            try:
                amount = Decimal(form.get("amount", "").strip()) * 100
                if amount != amount.to_integral_value():
                    raise InvalidOperation
            except InvalidOperation:
                raise BillingError(f"amount: {form.get('amount', '')[:20]!r} is not an amount like 12.34") from None
            try:
                paid_on = date.fromisoformat(form.get("paid_on", "").strip())
            except ValueError:
                raise BillingError("date: the day it was paid, YYYY-MM-DD") from None
            record_payment(
                invoice,
                int(amount),
                form.get("method", ""),
                form.get("reference", ""),
                paid_on,
                recorded_by=current_user._get_current_object(),
                note=form.get("note", "")[:1000],
            )
        except BillingError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return self.back(invoice)
        state = "paid" if invoice.status == InvoiceStatus.PAID else "open, with a balance"
        flash(f"Payment recorded; invoice {invoice.number} is {state}.", "success")
        return self.back(invoice)


class PaymentView(ReadOnlyModelView):
    column_list = ("invoice", "amount", "method", "reference", "paid_on", "created_at")
    column_filters = ("method", "paid_on", "reference")
    column_default_sort = ("id", True)
    column_sortable_list = ("paid_on",)
    column_formatters = {"amount": money_formatter, "created_at": when_formatter}
