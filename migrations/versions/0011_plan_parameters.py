"""Plans declare the parameters their commands accept (service_plans.parameters)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:20:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    # NULL: the plan's spec declares nothing, and it takes the params its steps default (app/ops/parameters.py)
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("service_plans") as batch:
        batch.add_column(sa.Column("parameters", json_type, nullable=True))


def downgrade():
    with op.batch_alter_table("service_plans") as batch:
        batch.drop_column("parameters")
