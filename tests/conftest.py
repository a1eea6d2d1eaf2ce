"""Fixtures: a sample dataset, a private SQLite or PostgreSQL database, a private Redis database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """The sample dataset, plus a corrupt video, a video with no face and a file to ignore."""
    from shared.sample_data import make_sample_dataset, write_blank_video, write_corrupt_video

    root = tmp_path_factory.mktemp("celeb-df")
    make_sample_dataset(root)
    write_corrupt_video(root / "Celeb-real" / "id9_0000.mp4")
    write_blank_video(root / "YouTube-real" / "00099.mp4")
    (root / "Celeb-real" / "notes.txt").write_text("not a video")
    return root


@pytest.fixture
def local_db(tmp_path, monkeypatch):
    """In-process settings for a fresh embedded-mode DATA_DIR with its schema created."""
    from db.session import init_db, reset_engine
    from shared.settings import get_settings, reset_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    reset_settings()
    reset_engine()
    init_db()
    yield get_settings()
    reset_engine()
    reset_settings()


def _admin_engine():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def pg_url():
    """A PostgreSQL database of its own, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"celebdf_test_{uuid.uuid4().hex[:10]}"
    engine = _admin_engine()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def redis_url():
    """A Redis database emptied before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def detector():
    from workers.faces import get_detector

    return get_detector()
