"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from db.migrate import alembic_config
from db.models import Base


def schema_drift(url):
    engine = create_engine(url)
    with engine.connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        revision = MigrationContext.configure(conn).get_current_revision()
    engine.dispose()
    return drift, revision


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("pg_url")


def test_upgrade_matches_the_models_and_downgrades_cleanly(database_url):
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    drift, revision = schema_drift(database_url)
    assert drift == [] and revision is not None
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    assert schema_drift(database_url)[0] == []


def test_0003_names_existing_datasets_after_their_folder_and_keeps_their_params(tmp_path):
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        for id_, root in ((1, "/data/Celeb-DF-v2"), (2, "/other/Celeb-DF-v2")):
            conn.execute(text("INSERT INTO datasets (id, root, created_at) VALUES (:i, :r, '2026-11-27')"),
                         {"i": id_, "r": root})
        conn.execute(text("INSERT INTO ingests (dataset_id, params, then_train, created_at) "
                          "VALUES (1, '{\"every_s\": 2.0}', 0, '2026-11-27')"))
    command.upgrade(config, "0003")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, name, format, params FROM datasets ORDER BY id")).all()
    engine.dispose()
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "Celeb-DF-v2", "celebdf"), (2, "Celeb-DF-v2-2", "celebdf")]
    assert '"every_s": 2.0' in rows[0][3] and rows[1][3] is None


def test_0005_renames_the_recorded_sampling_interval_every_and_back(database_url):
    import sqlalchemy as sa

    config = alembic_config(database_url)
    command.upgrade(config, "0004")
    engine = create_engine(database_url)
    when = datetime(2026, 11, 27, tzinfo=timezone.utc)
    datasets = sa.table("datasets", *(sa.column(c) for c in ("id", "root", "name", "format", "created_at")),
                        sa.column("params", sa.JSON))
    ingests = sa.table("ingests", *(sa.column(c) for c in ("dataset_id", "then_train", "created_at")),
                       sa.column("params", sa.JSON))
    runs = sa.table("runs", *(sa.column(c) for c in ("id", "status", "attempts", "created_at")),
                    sa.column("config", sa.JSON))
    old = {"every_s": 2.0, "frames": None, "size": 64}
    with engine.begin() as conn:
        conn.execute(datasets.insert().values(id=1, root="/d", name="d", format="celebdf", params=old, created_at=when))
        conn.execute(ingests.insert().values(dataset_id=1, params=old, then_train=False, created_at=when))
        conn.execute(runs.insert(), [
            {"id": "r1", "status": "done", "attempts": 0, "created_at": when, "config": {"epochs": 1, "ingest": old}},
            {"id": "r2", "status": "done", "attempts": 0, "created_at": when, "config": {"ingest": None}}])

    def recorded():
        with engine.connect() as conn:
            return (conn.execute(sa.select(datasets.c.params)).scalar(), conn.execute(sa.select(ingests.c.params)).scalar(),
                    *conn.execute(sa.select(runs.c.config).order_by(runs.c.id)).scalars())

    command.upgrade(config, "0005")
    dataset, ingest, run, empty = recorded()
    assert dataset == ingest == run["ingest"] == {"every": 2.0, "frames": None, "size": 64}
    assert run["epochs"] == 1 and empty == {"ingest": None}
    command.downgrade(config, "0004")
    dataset, ingest, run, _ = recorded()
    assert dataset == ingest == run["ingest"] == old
    engine.dispose()
