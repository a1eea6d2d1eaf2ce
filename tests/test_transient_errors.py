"""A database outage is ridden out: tasks retry with backoff; a bad video is not retried."""

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL
from tests.support import CeleryWorker, pipeline_env, run_cli, run_cli_json

pytestmark = pytest.mark.integration


def set_connections_allowed(database: str, allowed: bool) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
    admin.dispose()


def test_tasks_retry_through_a_database_outage(sample_root, tmp_path, pg_url, redis_url):
    env = pipeline_env(DATA_DIR=tmp_path / "data", DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_url)
    assert run_cli(["db", "upgrade"], env).returncode == 0
    queued = run_cli_json(["ingest", str(sample_root)], env)
    database = make_url(pg_url).database

    set_connections_allowed(database, False)
    try:
        with CeleryWorker(env, queues="cpu", concurrency=2, log_dir=tmp_path) as worker:
            deadline = time.monotonic() + 60
            while worker.log().count("Retry in") < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            set_connections_allowed(database, True)
            result = run_cli_json(["ingest", str(sample_root), "--wait"], env, expect_code=1)
            log = worker.log()
    finally:
        set_connections_allowed(database, True)

    assert "Retry in" in log and "OperationalError" in log  # retried with backoff, not failed
    by_status = result["status"]["videos"]["by_status"]
    assert by_status["pending"] == by_status["running"] == 0
    assert by_status["done"] == queued["enqueued"] - 2 and by_status["no_face"] == 1
    (failure,) = result["status"]["failures"]
    assert failure["video"] == "Celeb-real/id9_0000.mp4" and "cannot open" in failure["error"]

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM videos WHERE rel_path = 'Celeb-real/id9_0000.mp4'")).scalar()
        dupes = conn.execute(text("SELECT count(*) - count(DISTINCT (video_id, frame_index, face_index)) FROM crops")).scalar()
    engine.dispose()
    assert attempts == 1  # the corrupt video was decoded once: a bad video is not a transient error
    assert dupes == 0
