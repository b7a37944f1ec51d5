"""Billing: invoices (one per user and month), their lines, the yearly number counters, payments.

Money is integer minor units with the invoice's currency; decimal quantities and unit prices are
stored as text (exact). A finalized invoice cannot change: triggers (``IMMUTABLE_SQL``, created with the
tables and by migration 0007) refuse any change to its content, its lines and its deletion, on SQLite and
PostgreSQL alike; only its status moves on (open -> paid | void | uncollectible), with their dates.
"""

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import DDL, Date, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .services import JSONType, ServicePlan
from .types import UTCDateTime, utcnow
from .users import User


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class Invoice(db.Model):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("user_id", "period"),
        Index("ix_invoices_status_due", "status", "due_at"),
        # its id is in URLs and mails (a draft's, before it has a number): SQLite must not give a deleted one's again
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)  # history
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM: the half-open UTC month
    status: Mapped[str] = mapped_column(String(15), default=InvoiceStatus.DRAFT.value)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)  # YYYY-NNNNNN, when finalized
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(default=0)
    tax: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    tax_rate: Mapped[str] = mapped_column(String(10), default="0")
    tax_note: Mapped[str] = mapped_column(String(200), default="")
    reverse_charge: Mapped[bool] = mapped_column(default=False)
    customer: Mapped[dict] = mapped_column(JSONType, default=dict)  # the billing details, snapshotted
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # voided or marked uncollectible
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()
    # a draft's lines go with it, in the database (a finalized invoice cannot be deleted: the triggers below)
    lines: Mapped[list["InvoiceLine"]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.position", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self):
        return f"<Invoice {self.number or self.id} {self.period} {self.status}>"

    def __str__(self):
        return self.number or f"draft {self.period} #{self.id}"


class InvoiceLine(db.Model):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(10))  # base | usage
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[str] = mapped_column(String(40))  # exact decimal text
    unit: Mapped[str] = mapped_column(String(20), default="")
    unit_price: Mapped[str] = mapped_column(String(40))  # minor units per unit, decimal text
    amount: Mapped[int]  # minor units, rounded half-up once
    # what was billed is history: the plan and the metric cannot be deleted while a line names them
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("service_plans.id", ondelete="RESTRICT"))
    metric_id: Mapped[int | None] = mapped_column(ForeignKey("metrics.id", ondelete="RESTRICT"))

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    plan: Mapped[ServicePlan | None] = relationship()


class InvoiceCounter(db.Model):
    """The last invoice number given in a year: taken and incremented in the finalizing transaction."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


class PaymentMethod(StrEnum):
    BANK_TRANSFER = "bank transfer"
    CARD = "card"
    OTHER = "other"


class Payment(db.Model):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="RESTRICT"), index=True)
    amount: Mapped[int]  # minor units, in the invoice's currency
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(200), unique=True)  # the bank's, or the provider's id
    paid_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    invoice: Mapped[Invoice] = relationship()


# The database refuses changes to finalized invoices (status other than draft): their content, their lines,
# their deletion; and the deletion of payments. Status moves (with paid_at / closed_at / reminded_at) stay.
CONTENT = (
    "user_id",
    "period",
    "number",
    "currency",
    "subtotal",
    "tax",
    "total",
    "tax_rate",
    "tax_note",
    "reverse_charge",
    "customer",
    "issued_at",
    "due_at",
)
PDF = ("pdf", "pdf_sha256")  # written once, after the number is committed (see app.billing.invoices.store_pdf)


def _pdf_changes(unchanged: str) -> str:
    """The PDF columns change, other than from both NULL to both set (the one write they get)."""
    changed = " OR ".join(f"NEW.{c} {unchanged} OLD.{c}" for c in PDF)
    once = " AND ".join([*(f"OLD.{c} IS NULL" for c in PDF), *(f"NEW.{c} IS NOT NULL" for c in PDF)])
    return f"(({changed}) AND NOT ({once}))"


SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS invoices_immutable BEFORE UPDATE ON invoices WHEN OLD.status != 'draft' AND ("
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in CONTENT)
    + " OR "
    + _pdf_changes("IS NOT")
    + " OR NEW.status = 'draft') BEGIN SELECT RAISE(ABORT, 'a finalized invoice cannot change'); END",
    "CREATE TRIGGER IF NOT EXISTS invoices_undeletable BEFORE DELETE ON invoices WHEN OLD.status != 'draft' "
    "BEGIN SELECT RAISE(ABORT, 'a finalized invoice cannot be deleted'); END",
    *[
        f"CREATE TRIGGER IF NOT EXISTS invoice_lines_immutable_{op.lower()} BEFORE {op} ON invoice_lines "  # noqa: S608
        f"WHEN (SELECT status FROM invoices WHERE id = {row}.invoice_id) != 'draft' "
        "BEGIN SELECT RAISE(ABORT, 'the lines of a finalized invoice cannot change'); END"
        for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
    ],
    "CREATE TRIGGER IF NOT EXISTS payments_undeletable BEFORE DELETE ON payments "
    "BEGIN SELECT RAISE(ABORT, 'payments cannot be deleted'); END",
]
POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION omegaops_invoice_immutable() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status != 'draft' THEN RAISE EXCEPTION 'a finalized invoice cannot be deleted'; END IF;
    RETURN OLD;
  END IF;
  IF OLD.status != 'draft' AND (NEW.status = 'draft' OR ("""
    + " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in CONTENT)
    + " OR "
    + _pdf_changes("IS DISTINCT FROM")
    + """)) THEN
    RAISE EXCEPTION 'a finalized invoice cannot change';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "CREATE OR REPLACE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices "
    "FOR EACH ROW EXECUTE FUNCTION omegaops_invoice_immutable()",
    """CREATE OR REPLACE FUNCTION omegaops_invoice_lines_immutable() RETURNS trigger AS $$
DECLARE parent integer;
BEGIN
  IF TG_OP = 'INSERT' THEN parent := NEW.invoice_id; ELSE parent := OLD.invoice_id; END IF;
  IF (SELECT status FROM invoices WHERE id = parent) != 'draft' THEN
    RAISE EXCEPTION 'the lines of a finalized invoice cannot change';
  END IF;
  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql""",
    "CREATE OR REPLACE TRIGGER invoice_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines "
    "FOR EACH ROW EXECUTE FUNCTION omegaops_invoice_lines_immutable()",
    """CREATE OR REPLACE FUNCTION omegaops_payments_undeletable() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'payments cannot be deleted'; END $$ LANGUAGE plpgsql""",
    "CREATE OR REPLACE TRIGGER payments_undeletable BEFORE DELETE ON payments "
    "FOR EACH ROW EXECUTE FUNCTION omegaops_payments_undeletable()",
]


def _install_triggers(statements_by_dialect):
    for dialect, statements in statements_by_dialect.items():
        for statement in statements:
            event.listen(db.metadata, "after_create", DDL(statement).execute_if(dialect=dialect))


# after every table exists (create_all: the tests, a fresh database); migration 0007 runs the same statements
_install_triggers({"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRES_TRIGGERS})
