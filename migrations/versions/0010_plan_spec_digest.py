"""Plans remember the state their last spec load left them in (spec_digest), so operator edits are kept

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 13:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # NULL for every plan loaded before: the next load adopts a plan whose state its spec matches, and keeps
    # (or refuses to overwrite) one that differs
    with op.batch_alter_table("service_plans") as batch:
        batch.add_column(sa.Column("spec_digest", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("service_plans") as batch:
        batch.drop_column("spec_digest")
