"""videos record the file their crops were made from (size, mtime, fingerprint); runs record that
their data changed; split members are indexed by crop

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('size_bytes', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('mtime_ns', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('fingerprint', sa.String(length=64), nullable=True))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_changed', sa.JSON(), nullable=True))
    op.create_index('ix_split_members_crop_id', 'split_members', ['crop_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_split_members_crop_id', table_name='split_members')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('data_changed')
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_column('fingerprint')
        batch_op.drop_column('mtime_ns')
        batch_op.drop_column('size_bytes')
