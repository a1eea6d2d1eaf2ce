"""Alembic migrations, run from code (`orchestrator db upgrade`, the compose `migrate` service)."""

from __future__ import annotations

from contextlib import contextmanager
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


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_schema() -> None:
    """Create the database's tables, or migrate them to the latest revision (Alembic). Every
    command runs it first, so a new DATA_DIR or a database left by an older version just works.
    Safe to race: a schema already at the head is only read; otherwise one process at a time
    migrates (a lock file beside a SQLite database, an advisory lock on PostgreSQL)."""
    if current() == head():
        return
    with migration_lock():
        upgrade()


def schema_is_current() -> bool:
    """For read-only commands: True when the tables exist at the latest revision (nothing to write)."""
    return current() == head()


# Any constant: the PostgreSQL advisory lock that serialises migrations.
_PG_LOCK_KEY = 0x0CE1EBDF


@contextmanager
def migration_lock():
    from sqlalchemy import text

    from db.session import get_engine

    engine = get_engine()
    if engine.dialect.name == "sqlite":
        import fcntl

        database = engine.url.database
        lock_path = Path(f"{database}.migrate.lock") if database not in (None, "", ":memory:") else None
        if lock_path is None:
            yield
            return
        with open(lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
    else:
        yield


def current(database_url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from db.session import get_engine

    with get_engine().connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
