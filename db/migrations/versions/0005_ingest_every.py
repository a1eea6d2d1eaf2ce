"""recorded ingest parameters name the sampling interval "every", as the --every option does

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:00:00

Datasets, ingests and runs (config["ingest"]) recorded "every_s": renamed, value kept.
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TABLES = (("datasets", "params", None), ("ingests", "params", None), ("runs", "config", "ingest"))


def _rename(old: str, new: str) -> None:
    bind = op.get_bind()
    for name, column, inside in _TABLES:
        key_type = sa.String if name == "runs" else sa.Integer
        table = sa.table(name, sa.column("id", key_type), sa.column(column, sa.JSON))
        for row_id, value in bind.execute(sa.select(table.c.id, table.c[column])).all():
            params = (value or {}).get(inside) if inside else value
            if not params or old not in params:
                continue
            params = {new if key == old else key: item for key, item in params.items()}
            value = {**value, inside: params} if inside else params
            bind.execute(table.update().where(table.c.id == row_id).values({column: value}))


def upgrade() -> None:
    _rename("every_s", "every")


def downgrade() -> None:
    _rename("every", "every_s")
