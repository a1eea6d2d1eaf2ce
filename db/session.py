"""Engine and session handling that is safe in forked Celery worker processes."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import get_settings

_engine: Engine | None = None
_engine_url: str | None = None
_engine_pid: int | None = None
_factory: sessionmaker | None = None


SQLITE_BUSY_TIMEOUT_S = 30


def _switch_to_wal(cur) -> None:
    """``PRAGMA journal_mode=WAL``, waiting while another process holds the file. On a fresh file
    that process may be creating the schema: this connection then holds a read lock and needs an
    exclusive one, and SQLite answers "database is locked" at once instead of calling the busy
    handler (it would deadlock). The mode persists in the file, so once one process has switched
    it, the others' pragma only reads it."""
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    pause = 0.02
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - trivial
        cur = dbapi_conn.cursor()
        # Several worker processes write at once: WAL lets readers and one writer overlap,
        # the busy timeout makes the others wait instead of failing with "database is locked".
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        _switch_to_wal(cur)
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def check_database_url(url: str) -> None:
    """InputError, in one line, for a URL that is not one or whose driver is not installed; the
    folder of a SQLite file must exist unless it lies inside DATA_DIR (made on first use)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from shared.errors import InputError
    from shared.settings import mask_url

    try:
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()
    except ArgumentError:
        raise InputError(f"DATABASE_URL {mask_url(url)}: not a database URL "
                         "(e.g. postgresql+psycopg://user@host/db or sqlite:////path/file.db)") from None
    except (NoSuchModuleError, ImportError) as exc:
        raise InputError(f"DATABASE_URL {mask_url(url)}: no driver for it is installed ({exc})") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        data_dir = get_settings().data_dir
        if not folder.is_dir() and folder != data_dir and data_dir not in folder.parents:
            raise InputError(f"DATABASE_URL {url}: the folder {folder} does not exist")


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried: root passes every access() check)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def make_engine(url: str) -> Engine:
    settings = get_settings()
    if url.startswith("sqlite"):
        check_database_url(url)
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if Path(path).is_file() and not _writable(Path(path).parent):
                # A read-only DATA_DIR (a read-only mount, an immutable folder): SQLite cannot create
                # the WAL's shared-memory file there, so even reading fails. Open the file immutable,
                # read-only: status, export, report and runs work; writing commands fail in one line.
                engine = create_engine(f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true")
                return engine
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def get_engine() -> Engine:
    """The engine of this process. A forked child gets a fresh pool, never its parent's sockets."""
    global _engine, _engine_url, _engine_pid, _factory
    url = get_settings().database_url
    if _engine is not None and _engine_url == url and _engine_pid == os.getpid():
        return _engine
    if _engine is not None and _engine_pid != os.getpid():
        _engine.dispose(close=False)  # leave the parent's connections to the parent
    elif _engine is not None:
        _engine.dispose()
    _engine = make_engine(url)
    _engine_url, _engine_pid = url, os.getpid()
    _factory = sessionmaker(bind=_engine, expire_on_commit=False)
    return _engine


def reset_engine() -> None:
    """Forget the engine (after a fork or a settings change); the next use builds a new one."""
    global _engine, _engine_url, _engine_pid, _factory
    if _engine is not None:
        _engine.dispose(close=_engine_pid == os.getpid())
    _engine = _engine_url = _engine_pid = _factory = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """One short transaction: commit on success, roll back on error."""
    get_engine()
    assert _factory is not None
    session = _factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def call_with_db_retry(fn, *, give_up_after_s: float = 300.0, pause_s: float = 2.0, on_retry=None):
    """Call ``fn()``; while the database cannot be reached, wait and try again, for at most
    ``give_up_after_s`` seconds. For long waits that should survive a database restart."""
    import time

    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + give_up_after_s
    while True:
        try:
            return fn()
        except OperationalError as exc:
            if time.monotonic() > deadline:
                raise
            if on_retry:
                on_retry(exc)
            reset_engine()
            time.sleep(pause_s)
