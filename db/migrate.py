"""Alembic migrations, run from code (`orchestrator db upgrade`, the compose `migrate` service)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    url = database_url or get_settings().database_url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(revision: str = "head", database_url: str | None = None) -> None:
    command.upgrade(alembic_config(database_url), revision)


def upgrade_schema() -> None:
    """Create the database's tables, or migrate them to the latest revision (Alembic). Every
    command runs it first, so a new DATA_DIR or a database left by an older version just works."""
    upgrade()


def current(database_url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from db.session import get_engine

    with get_engine().connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
