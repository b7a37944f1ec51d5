"""A finalized invoice takes its PDF once, after its number is committed

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 11:40:00

The immutability trigger refused any change to a finalized invoice's pdf and pdf_sha256, so the PDF had to be
rendered in the transaction that took the year's counter row, holding that lock for the whole render. Now the
two columns may go from NULL to set, once (app.billing.invoices.store_pdf); every other change stays refused.
Downgrading puts the old rule back: a finalized invoice still without its PDF then cannot get one.
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# the rule before this revision: the PDF columns as fixed as every other column
_OLD_CONTENT = (
    "user_id", "period", "number", "currency", "subtotal", "tax", "total", "tax_rate", "tax_note",
    "reverse_charge", "customer", "issued_at", "due_at", "pdf", "pdf_sha256",
)
_OLD_SQLITE = (
    "CREATE TRIGGER invoices_immutable BEFORE UPDATE ON invoices WHEN OLD.status != 'draft' AND ("
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _OLD_CONTENT)
    + " OR NEW.status = 'draft') BEGIN SELECT RAISE(ABORT, 'a finalized invoice cannot change'); END"
)
_OLD_POSTGRES = (
    """CREATE OR REPLACE FUNCTION omegaops_invoice_immutable() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status != 'draft' THEN RAISE EXCEPTION 'a finalized invoice cannot be deleted'; END IF;
    RETURN OLD;
  END IF;
  IF OLD.status != 'draft' AND (NEW.status = 'draft' OR ("""
    + " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _OLD_CONTENT)
    + """)) THEN
    RAISE EXCEPTION 'a finalized invoice cannot change';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql"""
)


def _invoice_rule(dialect):
    from app.models.billing import POSTGRES_TRIGGERS, SQLITE_TRIGGERS

    if dialect == "postgresql":
        return POSTGRES_TRIGGERS[0]  # the function; its trigger stays
    return next(s for s in SQLITE_TRIGGERS if " invoices_immutable " in s)


def upgrade():
    dialect = op.get_bind().dialect.name
    if dialect != "postgresql":
        op.execute("DROP TRIGGER IF EXISTS invoices_immutable")
    op.execute(_invoice_rule(dialect))


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_OLD_POSTGRES)
    else:
        op.execute("DROP TRIGGER IF EXISTS invoices_immutable")
        op.execute(_OLD_SQLITE)
