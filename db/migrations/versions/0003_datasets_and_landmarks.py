"""datasets of several formats (name, format, params), video method, crop landmarks, evaluations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:40:00

Existing datasets are Celeb-DF ones: their format is "celebdf" and their name the folder's name
(a second folder of the same name gets "-2", "-3" ...). Their params are the latest ingest's.
"""
from pathlib import PurePath

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

LANDMARK_COLUMNS = ("left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y", "nose_x", "nose_y",
                    "mouth_left_x", "mouth_left_y", "mouth_right_x", "mouth_right_y")


def _backfill_datasets() -> None:
    bind = op.get_bind()
    datasets = sa.table("datasets", sa.column("id", sa.Integer), sa.column("root", sa.String),
                        sa.column("name", sa.String), sa.column("format", sa.String),
                        sa.column("params", sa.JSON))
    ingests = sa.table("ingests", sa.column("id", sa.Integer), sa.column("dataset_id", sa.Integer),
                       sa.column("params", sa.JSON))
    taken: set[str] = set()
    for dataset_id, root in bind.execute(sa.select(datasets.c.id, datasets.c.root).order_by(datasets.c.id)).all():
        base = PurePath(root).name or f"dataset{dataset_id}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        params = bind.execute(sa.select(ingests.c.params).where(ingests.c.dataset_id == dataset_id)
                              .order_by(ingests.c.id.desc()).limit(1)).scalar()
        bind.execute(sa.update(datasets).where(datasets.c.id == dataset_id)
                     .values(name=name, format="celebdf", **({"params": params} if params is not None else {})))


def upgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('format', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('scan_options', sa.JSON(), nullable=True))
    _backfill_datasets()
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=128), nullable=False)
        batch_op.alter_column('format', existing_type=sa.String(length=16), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_datasets_name'), ['name'])

    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.add_column(sa.Column('method', sa.String(length=64), nullable=True))
        # Other layouts have deeper folders, longer group names and keys than Celeb-DF.
        batch_op.alter_column('folder', existing_type=sa.String(length=64), type_=sa.String(length=512),
                              existing_nullable=False)
        batch_op.alter_column('source_identity', existing_type=sa.String(length=32),
                              type_=sa.String(length=128), existing_nullable=True)
        batch_op.alter_column('target_identity', existing_type=sa.String(length=32),
                              type_=sa.String(length=128), existing_nullable=True)
        batch_op.alter_column('group_key', existing_type=sa.String(length=128), type_=sa.String(length=512),
                              existing_nullable=False)

    with op.batch_alter_table('crops', schema=None) as batch_op:
        for column in LANDMARK_COLUMNS:
            batch_op.add_column(sa.Column(column, sa.Float(), nullable=True))

    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('part', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('videos', sa.Integer(), nullable=True),
    sa.Column('crops', sa.Integer(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('artifacts', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id', 'dataset_id', 'part', name='uq_evaluations_run_dataset_part')
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_run_id'))
    op.drop_table('evaluations')
    with op.batch_alter_table('crops', schema=None) as batch_op:
        for column in reversed(LANDMARK_COLUMNS):
            batch_op.drop_column(column)
    with op.batch_alter_table('videos', schema=None) as batch_op:
        batch_op.alter_column('group_key', existing_type=sa.String(length=512), type_=sa.String(length=128),
                              existing_nullable=False)
        batch_op.alter_column('target_identity', existing_type=sa.String(length=128),
                              type_=sa.String(length=32), existing_nullable=True)
        batch_op.alter_column('source_identity', existing_type=sa.String(length=128),
                              type_=sa.String(length=32), existing_nullable=True)
        batch_op.alter_column('folder', existing_type=sa.String(length=512), type_=sa.String(length=64),
                              existing_nullable=False)
        batch_op.drop_column('method')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_datasets_name'), type_='unique')
        batch_op.drop_column('scan_options')
        batch_op.drop_column('params')
        batch_op.drop_column('format')
        batch_op.drop_column('name')
