"""training runs hold a lease (attempts, heartbeat, resumed epoch); videos record frames expected

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 02:40:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resumed_from_epoch', sa.Integer(), nullable=True))
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frames_expected', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.drop_column('frames_expected')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('resumed_from_epoch')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('attempts')
