"""Training end to end through a real worker on queue `gpu`, then prediction on a new video."""

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import CeleryWorker, pipeline_env, run_cli, run_cli_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a run trained on a gpu-queue worker: ~2-4 min

REPORT_METRICS = {"loss", "accuracy", "precision", "recall", "f1", "auc", "ap", "eer",
                  "video_auc", "video_accuracy", "confusion_matrix"}
SPLIT_KEYS = {"strategy", "train_videos", "val_videos", "test_videos", "train_crops", "val_crops",
              "test_crops", "shared_videos", "shared_sources"}
# 64 px: these runs check the machinery (queues, caches, records), not what a model learns; ResNet50
# at 128 px costs ~4x the compute for nothing more.
TRAIN_ARGS = ["train", "--epochs", "1", "--weights", "none", "--batch-size", "16", "--image-size", "64"]


@pytest.fixture(scope="module")
def training_dataset(tmp_path_factory):
    """Enough videos and identities for a grouped train / val / test split."""
    from shared.sample_data import make_sample_dataset, write_blank_video

    root = tmp_path_factory.mktemp("celeb-df-train")
    make_sample_dataset(root, reals_per_folder=6, fakes=8, seconds=4.0)
    write_blank_video(tmp_path_factory.mktemp("new") / "blank.mp4")
    return root


def check_run(report, data_dir, database_url, backbone, epochs=1):
    assert report["status"] == "done", report.get("error")
    assert report["config"]["backbone"] == backbone and report["config"]["epochs"] == epochs
    split = report["split"]
    assert SPLIT_KEYS <= set(split) and split["strategy"] == "video"
    assert split["shared_videos"] == 0 and split["shared_sources"] == 0
    assert min(split["train_crops"], split["test_crops"]) > 0
    metrics = report["metrics"]
    assert REPORT_METRICS <= set(metrics)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["video_accuracy"] <= 1.0
    cm = metrics["confusion_matrix"]
    assert sum(map(sum, cm)) == split["test_crops"]
    assert len(report["history"]["loss"]) == metrics["epochs_run"] <= epochs and "val_loss" in report["history"]

    run_dir = data_dir / "runs" / report["run_id"]
    assert Path(report["artifacts"]["model"]) == run_dir / "model.keras" and (run_dir / "model.keras").stat().st_size
    for name in ("config.json", "history.csv", "metrics.json", "test_predictions.csv", "report.html"):
        assert (run_dir / name).is_file(), name
    assert sorted(Path(p).name for p in report["artifacts"]["plots"]) == ["confusion_matrix.png", "history.png", "roc.png",
                                                                         "video_confusion_matrix.png"]
    for plot in report["artifacts"]["plots"]:
        assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backbone"] == backbone and config["split"]["strategy"] == "video"

    engine = create_engine(database_url)
    with engine.connect() as conn:
        status, progress = conn.execute(text("SELECT status, progress FROM runs WHERE id = :id"),
                                        {"id": report["run_id"]}).one()
        parts = dict(conn.execute(text(
            "SELECT part, count(*) FROM split_members WHERE run_id = :id GROUP BY part"), {"id": report["run_id"]}).all())
        # The leakage check, recomputed from the rows: no source group on both sides.
        leaking = conn.execute(text(
            "SELECT count(*) FROM (SELECT v.group_key FROM split_members s JOIN crops c ON c.id = s.crop_id "
            "JOIN videos v ON v.id = c.video_id WHERE s.run_id = :id GROUP BY v.group_key "
            "HAVING count(DISTINCT CASE WHEN s.part = 'test' THEN 1 ELSE 0 END) > 1) g"), {"id": report["run_id"]}).scalar()
    engine.dispose()
    assert status == "done" and leaking == 0
    assert parts["train"] == split["train_crops"] and parts["test"] == split["test_crops"]
    assert parts.get("val", 0) == split["val_crops"]
    progress = json.loads(progress) if isinstance(progress, str) else progress
    assert progress["phase"] == "done"


# The embedded path (ingest, train on a local gpu-queue worker, report, runs, predict) is checked
# by the learning guard, tests/test_learning.py, on the run it trains: one ingest and one
# training for both (the suite's time is bounded, issue #11).


def test_distributed_train_on_a_gpu_queue_worker(training_dataset, tmp_path, pg_url, redis_url):
    data_dir = tmp_path / "data"
    env = pipeline_env(DATA_DIR=data_dir, DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_url)
    assert run_cli(["db", "upgrade"], env).returncode == 0
    with CeleryWorker(env, queues="cpu", concurrency=2, name="cpu", log_dir=tmp_path):
        run_cli_json(["ingest", str(training_dataset), "--wait"], env)

    cache = tmp_path / "train-cache"  # tf.data's file cache instead of memory (large datasets)
    queued = run_cli_json([*TRAIN_ARGS, "--backbone", "mobilenetv2", "--cache", str(cache)], env)  # returns
    assert queued["status"] == "running" and queued["metrics"]["accuracy"] is None
    with CeleryWorker(env, queues="gpu", concurrency=1, name="gpu", log_dir=tmp_path,
                      extra=["--max-tasks-per-child", "1"]) as gpu:
        waited = run_cli_json([*TRAIN_ARGS, "--backbone", "resnet50", "--wait"], env)
        first = run_cli_json(["report", queued["run_id"]], env)
        assert "train.fit" in gpu.log()
    check_run(first, data_dir, pg_url, "mobilenetv2")
    assert first["config"]["cache"] == str(cache)
    # The CPU workers wrote each video's crops.pack: training read every crop from them, so no file
    # cache was made (a copy of the packs). The PNG path through the file cache: tests/test_crop_pack.py.
    assert first["config"]["train_crops_from_packs"] == first["split"]["train_crops"] > 0
    assert not any(p.name.startswith(f"{queued['run_id']}-train") for p in cache.iterdir())
    check_run(waited, data_dir, pg_url, "resnet50")
    runs = run_cli_json(["runs"], env)
    assert [r["backbone"] for r in runs] == ["mobilenetv2", "resnet50"]
    assert "mobilenetv2" in run_cli(["runs"], env).stdout
