"""recorded files are keys relative to the storage root, not absolute paths

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:00:00

Runs' and evaluations' artifacts (and any crop path) written as absolute paths become keys from
the first folder the pipeline owns on (``/old/data/runs/ab12/model.keras`` ->
``runs/ab12/model.keras``), so a copied or moved DATA_DIR reads its own files. A path naming no
such folder is left as it was. Downgrade writes absolute paths under the DATA_DIR of the process
that runs it (what the older code expects).
"""
import sqlalchemy as sa
from alembic import op

from shared.storage import artifact_keys, legacy_key, resolve_artifacts

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _rewrite_artifacts(convert) -> None:
    bind = op.get_bind()
    for name, key_type in (("runs", sa.String), ("evaluations", sa.Integer)):
        table = sa.table(name, sa.column("id", key_type), sa.column("artifacts", sa.JSON))
        for row_id, artifacts in bind.execute(sa.select(table.c.id, table.c.artifacts)).all():
            if artifacts and convert(artifacts) != artifacts:
                bind.execute(table.update().where(table.c.id == row_id).values(artifacts=convert(artifacts)))


def upgrade() -> None:
    _rewrite_artifacts(artifact_keys)
    bind = op.get_bind()
    crops = sa.table("crops", sa.column("id", sa.Integer), sa.column("crop_path", sa.String))
    for row_id, path in bind.execute(sa.select(crops.c.id, crops.c.crop_path).where(crops.c.crop_path.like("/%"))).all():
        if legacy_key(path):
            bind.execute(crops.update().where(crops.c.id == row_id).values(crop_path=legacy_key(path)))


def downgrade() -> None:
    # Crop paths were relative before 0008 already (those rewritten stay keys: older code reads them).
    _rewrite_artifacts(resolve_artifacts)
