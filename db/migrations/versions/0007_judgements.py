"""judgements (every verdict of `predict --queue` and the HTTP API) and api_keys (hashes only)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('key_hash'),
    )
    op.create_table(
        'judgements',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('video_sha256', sa.String(length=64), nullable=False),
        sa.Column('video_size', sa.BigInteger(), nullable=False),
        sa.Column('file_name', sa.String(length=512), nullable=True),
        sa.Column('source', sa.String(length=1024), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('requested_by', sa.String(length=255), nullable=False),
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('backbone', sa.String(length=64), nullable=False),
        sa.Column('threshold', sa.Float(), nullable=False),
        sa.Column('aggregation', sa.String(length=32), nullable=False),
        sa.Column('model_sha256', sa.String(length=64), nullable=False),
        sa.Column('ingest_params', sa.JSON(), nullable=False),
        sa.Column('explain', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('verdict', sa.String(length=8), nullable=True),
        sa.Column('fake_probability', sa.Float(), nullable=True),
        sa.Column('faces', sa.Integer(), nullable=True),
        sa.Column('scores', sa.JSON(), nullable=True),
        sa.Column('explanation', sa.String(length=1024), nullable=True),
        sa.Column('reused_from', sa.String(length=32), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('worker', sa.String(length=255), nullable=True),
        sa.Column('task_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('task_seconds', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_judgements_video_model', 'judgements', ['video_sha256', 'model_sha256'])
    op.create_index('ix_judgements_owner_created', 'judgements', ['api_key_id', 'created_at'])
    op.create_index('ix_judgements_status', 'judgements', ['status'])


def downgrade() -> None:
    op.drop_index('ix_judgements_status', table_name='judgements')
    op.drop_index('ix_judgements_owner_created', table_name='judgements')
    op.drop_index('ix_judgements_video_model', table_name='judgements')
    op.drop_table('judgements')
    op.drop_table('api_keys')
