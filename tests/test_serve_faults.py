"""The service on a cluster (PostgreSQL, Redis, a `celery worker -Q predict`): judgements queued
while no worker runs survive a server restart, and a worker child SIGKILLed while judging leaves
its judgement done exactly once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from shared.process import parse_process_name
from tests.judging_support import make_judging_run, pipeline_settings, sample_videos
from tests.serve_support import Server, upload, wait_finished
from tests.support import CeleryWorker, pipeline_env, run_cli, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a worker killed and a server restarted: ~2-3 min


def running_judgement(data_dir, database_url):
    from sqlalchemy import select

    from db.models import Judgement
    from db.session import session_scope

    with pipeline_settings(DATA_DIR=data_dir, DATABASE_URL=database_url):
        with session_scope() as session:
            row = session.execute(select(Judgement.id, Judgement.worker).where(Judgement.status == "running")).first()
    return (row.id, parse_process_name(row.worker)[1]) if row else None


def test_restart_loses_nothing_and_a_killed_worker_child_ends_done_once(tmp_path, pg_url, redis_url, fault_report):
    from sqlalchemy import func, select

    from db.models import Judgement
    from db.session import session_scope
    from workers.planning.runs import find_run
    from workers.predict import judge_videos

    data_dir = tmp_path / "data"
    make_judging_run(data_dir, pg_url)
    videos = sample_videos(tmp_path / "videos")[:3]  # three videos with a face
    env = pipeline_env(DATA_DIR=data_dir, DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_url)
    key = run_cli(["api-key", "create", "newsroom"], env).stdout.strip()

    server = Server(env, tmp_path).start(healthy=False)  # no worker yet: /healthz says 503
    try:
        with server.client() as client:
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["checks"]["predict_worker"]["ok"] is False
        with server.client(key) as client:
            ids = [upload(client, video).json()["id"] for video in videos]
        server.stop()
        server.start(healthy=False)  # restarted while every judgement is queued
        with server.client(key) as client:
            assert [client.get(f"/v1/judgements/{i}").json()["status"] for i in ids] == ["queued"] * 3

        with CeleryWorker(env, queues="predict", concurrency=1, name="predict", log_dir=tmp_path) as worker:
            judgement_id, pid = wait_until(lambda: running_judgement(data_dir, pg_url), 120, 0.01,
                                           "a running judgement")
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            states = wait_finished(data_dir, ids, pg_url)
            recovered_s = time.monotonic() - killed_at
            log = worker.log()
        with server.client(key) as client:
            judged = {i: client.get(f"/v1/judgements/{i}").json() for i in ids}
    finally:
        server.stop()

    assert states == {i: "done" for i in ids}
    assert "exited with 'signal 9 (SIGKILL)'" in log, log[-3000:]
    assert judged[judgement_id]["attempts"] == 2 and all(judged[i]["attempts"] == 1 for i in ids if i != judgement_id)
    with pipeline_settings(DATA_DIR=data_dir, DATABASE_URL=pg_url):
        with session_scope() as session:
            assert session.scalar(select(func.count()).select_from(Judgement)) == 3
        expected = judge_videos(videos, find_run(judged[ids[0]]["model"]["run_id"]))
    for judgement_id_, want in zip(ids, expected):
        assert judged[judgement_id_]["fake_probability"] == pytest.approx(want["fake_probability"], abs=1e-4)
    fault_report.update(fault="predict worker child SIGKILLed mid-judgement", recovered_s=round(recovered_s, 1),
                        judgements=3, attempts_of_killed=2)
