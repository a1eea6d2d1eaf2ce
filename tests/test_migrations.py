"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

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
