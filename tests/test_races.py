"""Two first ingests at once on a fresh DATA_DIR: the schema and the dataset are made once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from tests.support import REPO, pipeline_env

REGISTER = """
import sys
from db.migrate import upgrade_schema
from workers.planning.ingest import register_videos
from workers.datasets.celebdf import read_celebdf
upgrade_schema()
plan = register_videos(read_celebdf(sys.argv[1]), {}, retry_failed=False, embedded=True)
print(plan.dataset_id, plan.total_videos)
"""


def register_twice_at_once(env, root) -> list[str]:
    processes = [subprocess.Popen([sys.executable, "-c", REGISTER, str(root)], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        outputs.append(out.strip())
    return outputs


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_first_registrations_at_once(database, tmp_path, sample_root, request):
    for attempt in range(3 if database == "sqlite" else 1):
        data_dir = tmp_path / f"data{attempt}"
        url = request.getfixturevalue("pg_url") if database == "postgresql" else f"sqlite:///{data_dir / 'pipeline.db'}"
        env = pipeline_env(DATA_DIR=data_dir, DATABASE_URL=url)
        outputs = register_twice_at_once(env, sample_root)
        assert outputs[0] == outputs[1]  # one dataset, every video, seen by both
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM datasets")).scalar() == 1
            videos = conn.execute(text("SELECT count(*), count(DISTINCT rel_path) FROM videos")).one()
        engine.dispose()
        assert videos[0] == videos[1] == int(outputs[0].split()[1])


def test_a_new_connection_waits_while_another_process_writes_the_fresh_file(tmp_path, monkeypatch):
    """On a fresh file the switch to WAL needs an exclusive lock; while another connection writes
    (rollback journal, RESERVED lock) SQLite refuses at once, busy timeout or not. The engine must
    wait for it instead of failing with "database is locked" (it did, once in CI)."""
    import sqlite3
    import threading

    from db.session import make_engine

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    path = tmp_path / "pipeline.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (i INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.5, writer.execute, args=("COMMIT",))
    release.start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1  # waited for the commit
    finally:
        release.join()
        engine.dispose()
        writer.close()
