"""BRIN indexes for usage events' time and ingested_at on PostgreSQL

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 06:35:00

"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # events arrive roughly in time order: a block-range index costs a fraction of a b-tree per insert
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in (("ix_usage_events_time", "time"), ("ix_usage_events_ingested_at", "ingested_at")):
        op.drop_index(name, table_name="usage_events")
        op.create_index(name, "usage_events", [column], postgresql_using="brin")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, column in (("ix_usage_events_time", "time"), ("ix_usage_events_ingested_at", "ingested_at")):
        op.drop_index(name, table_name="usage_events")
        op.create_index(name, "usage_events", [column])
