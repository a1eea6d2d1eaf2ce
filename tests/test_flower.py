"""Flower against the real broker: every video's task is visible, queued and finished, with its video.

Flower builds its view from Celery events: the orchestrator sends "task-sent" (task_send_sent_event),
the workers send the others (worker_send_task_events). Each test runs its own `redis-server`.
"""

from __future__ import annotations

import ast
import socket

import pytest

from tests.support import CeleryWorker, Flower, pipeline_env, run_cli, run_cli_json, wait_until

pytestmark = pytest.mark.integration

EXPECTED_VIDEOS = 12  # the sample dataset (11), a corrupt video and a blank one (see conftest.sample_root)
CORRUPT = "Celeb-real/id9_0000.mp4"
BLANK = "YouTube-real/00099.mp4"
TASK = "ingest.process_video"


@pytest.fixture
def env(tmp_path, pg_url, private_redis):
    env = pipeline_env(DATA_DIR=tmp_path / "data", DATABASE_URL=pg_url, CELERY_BROKER_URL=private_redis.url)
    upgrade = run_cli(["db", "upgrade"], env)
    assert upgrade.returncode == 0, upgrade.stderr
    return env


def video_tasks(flower: Flower) -> dict[str, dict]:
    """Flower's tasks of the ingest, by the video named in their kwargs."""
    by_video = {}
    for uuid, task in flower.tasks().items():
        assert task["name"] == TASK, task
        kwargs = ast.literal_eval(task["kwargs"])
        by_video[kwargs["video"]] = {**task, "kwargs": kwargs, "uuid": uuid}
    return by_video


def tasks_when(flower: Flower, condition) -> dict | None:
    tasks = video_tasks(flower)
    return tasks if condition(tasks) else None


def test_flower_api_answers_only_with_credentials(env, private_redis, tmp_path):
    with Flower(env, private_redis.url, tmp_path) as flower:
        for path in ("/api/workers", "/api/tasks"):
            assert flower.get(path, auth=False)[0] == 401
            assert flower.get(path)[0] == 200
        wrong = Flower(env, private_redis.url, tmp_path, password="wrong")
        wrong.port = flower.port
        assert wrong.get("/api/tasks")[0] == 401


def test_flower_shows_queued_then_finished_tasks_with_their_videos(env, private_redis, sample_root, tmp_path):
    with Flower(env, private_redis.url, tmp_path) as flower:
        # No worker yet: the tasks wait in the queue, and Flower already lists them.
        queued = run_cli_json(["ingest", str(sample_root)], env)
        assert queued["enqueued"] == EXPECTED_VIDEOS
        pending = wait_until(lambda: tasks_when(flower, lambda t: len(t) == EXPECTED_VIDEOS),
                             30, 0.3, "Flower to list the queued tasks")
        videos = set(pending)
        assert CORRUPT in videos and BLANK in videos
        for video, task in pending.items():
            assert task["state"] == "PENDING", (video, task)
            assert task["sent"] and task["received"] is None and task.get("worker") is None
            assert task["routing_key"] == "cpu"
            assert task["kwargs"]["video_id"] > 0 and task["kwargs"]["params"]["every"] == 3.0

        with CeleryWorker(env, queues="cpu", concurrency=2, name="flower-test", log_dir=tmp_path):
            waited = run_cli_json(["ingest", str(sample_root), "--wait"], env, expect_code=1)  # 1: the corrupt one
            assert waited["enqueued"] == 0
            finished = wait_until(
                lambda: tasks_when(flower, lambda t: all(x["state"] == "SUCCESS" for x in t.values())),
                30, 0.3, "Flower to see every task succeed")
            status, workers = flower.get("/api/workers?refresh=1")
        assert status == 200
        worker_name = f"flower-test@{socket.gethostname()}"
        assert worker_name in workers, list(workers)
        assert "cpu" in {q["name"] for q in workers[worker_name]["active_queues"]}

    # The tasks that ran are the ones that were queued: one per video, nothing sent twice.
    assert {v: t["uuid"] for v, t in finished.items()} == {v: t["uuid"] for v, t in pending.items()}
    outcomes = {}
    for video, task in finished.items():
        assert task["worker"] == worker_name
        assert task["received"] and task["started"] and task["succeeded"] and task["runtime"] is not None
        result = ast.literal_eval(task["result"])
        assert result["video"] == video
        outcomes[video] = result["status"]
    # A video that cannot be read is not a task failure (it is not retried): the task returns
    # normally, and its result says what went wrong, as the database does.
    assert outcomes[CORRUPT] == "failed" and outcomes[BLANK] == "no_face"
    assert set(outcomes.values()) == {"done", "failed", "no_face"}
    corrupt = ast.literal_eval(finished[CORRUPT]["result"])
    failure = waited["status"]["failures"][0]
    assert failure["video"] == CORRUPT and corrupt["error"] == failure["error"]


@pytest.mark.slow  # trains a run: ~1.5-3 min
def test_flower_shows_training_progress(env, private_redis, tmp_path):
    """While `train.fit` runs, its state reads PROGRESS and its result field says the epoch and batch."""
    import subprocess
    import sys

    from shared.sample_data import make_sample_dataset
    from tests.support import REPO

    root = tmp_path / "celeb-df"
    make_sample_dataset(root, reals_per_folder=6, fakes=8, seconds=4.0)
    with CeleryWorker(env, queues="cpu", concurrency=2, name="flower-cpu", log_dir=tmp_path):
        run_cli_json(["ingest", str(root), "--wait"], env)

    with Flower(env, private_redis.url, tmp_path) as flower, \
            CeleryWorker(env, queues="gpu", concurrency=1, name="flower-gpu", log_dir=tmp_path):
        train = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "train", "--epochs", "2", "--weights", "none",
             "--batch-size", "8", "--backbone", "mobilenetv2", "--wait", "--json"],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

        def training_task():
            tasks = [t for t in flower.tasks().values() if t["name"] == "train.fit"]
            return tasks[0] if tasks else None

        def in_progress():
            task = training_task()
            return task if task and task["state"] == "PROGRESS" and "batch" in (task.get("result") or "") else None

        seen = wait_until(in_progress, 300, 0.2, "Flower to show the training's progress")
        out, _ = train.communicate(timeout=600)
        done = wait_until(lambda: (t := training_task()) and t["state"] == "SUCCESS" and t, 30, 0.3,
                          "Flower to see the training succeed")
    import json

    report = json.loads(out)
    assert train.returncode == 0 and report["status"] == "done"
    assert seen["result"].startswith("epoch ") and "/2, batch " in seen["result"]
    assert ast.literal_eval(seen["kwargs"])["run_id"] == report["run_id"]
    assert "mobilenetv2" in ast.literal_eval(seen["kwargs"])["summary"]
    assert ast.literal_eval(done["result"])["status"] == "done"
