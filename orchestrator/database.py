"""The commands' way into the database: whether there is one yet, and the one place where its
schema is brought up to date.

Not done once for every command in the CLI group, on purpose: each command first checks its input
(a bad input creates no database), and `ingest` starts its local workers before it imports any
database code (they boot meanwhile). Nothing here imports SQLAlchemy until it is called.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import get_settings


def database_exists() -> bool:
    """False for a fresh embedded DATA_DIR (no SQLite file yet): nothing is recorded there. A
    server database (PostgreSQL) is taken to exist. Only looks; creates and migrates nothing."""
    url = get_settings().database_url
    if not url.startswith("sqlite"):
        return True
    path = url.split("///", 1)[-1]
    return path not in ("", ":memory:") and Path(path).is_file()


def open_database() -> None:
    """Create the schema, or migrate it to the latest revision, before a command's first query
    (only reads when it is current: read-only commands work on a read-only DATA_DIR)."""
    from db.migrate import upgrade_schema

    upgrade_schema()
