"""The learning guard (issue #11): the whole chain -- labels, crops, split, preprocessing, model,
predict -- must learn. A flipped label, a leak of test videos into training that the split
misses, or a preprocessing mismatch between training and prediction fails here.

Through `orchestrator` itself, in embedded mode (SQLite, local Celery workers): sample data big
enough that the test part holds at least 8 videos of each class, the `tiny` backbone from
scratch at 64 px on the CPU, then `predict` on held-out videos must give the probabilities the
run itself gave their crops. About 3 minutes on 2 idle cores.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pytest

from tests.support import run_cli, run_cli_json, train_on_the_demo_sample
from tests.test_integration_train import check_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

from orchestrator.commands.demo import DEMO_EVERY_S, DEMO_TRAIN

# The demo's own settings: this test guards that the demo shows a model that works.
TRAIN = ["train", "--backbone", DEMO_TRAIN["backbone"], "--weights", DEMO_TRAIN["weights"],
         "--image-size", str(DEMO_TRAIN["image_size"]), "--epochs", str(DEMO_TRAIN["epochs"]),
         "--lr", str(DEMO_TRAIN["learning_rate"]), "--batch-size", str(DEMO_TRAIN["batch_size"])]
MIN_VIDEO_AUC = 0.9
MIN_TEST_VIDEOS_PER_CLASS = 8


def test_the_pipeline_learns_and_predict_agrees_with_the_run(tmp_path):
    from shared.sample_data import write_blank_video

    report, env, data_dir, dataset = train_on_the_demo_sample(tmp_path, DEMO_EVERY_S, TRAIN)
    metrics = report["metrics"]
    print({k: metrics.get(k) for k in ("video_auc", "auc", "video_accuracy", "threshold", "n_videos",
                                       "video_n_real", "video_n_fake", "epochs_run", "best_epoch")})
    assert report["split"]["shared_videos"] == 0 and report["split"]["shared_sources"] == 0
    assert min(metrics["video_n_real"], metrics["video_n_fake"]) >= MIN_TEST_VIDEOS_PER_CLASS, metrics
    # The demo's ~10 validation videos are too few to trust a threshold: said once, nothing else.
    other = [w for w in metrics["warnings"] if not w.startswith("SMALL VALIDATION")]
    assert other == [] and all("bootstrap" in w for w in metrics["warnings"]), metrics["warnings"]
    assert metrics["video_auc"] >= MIN_VIDEO_AUC, {k: metrics[k] for k in ("video_auc", "auc", "video_accuracy")}
    assert 0.0 < report["config"]["threshold"] < 1.0 and report["config"]["threshold_rule"]

    # The embedded path end to end: a real gpu-queue worker ran it; report, runs and predict agree.
    check_run(report, data_dir, f"sqlite:///{data_dir / 'pipeline.db'}", "tiny", epochs=DEMO_TRAIN["epochs"])
    assert "train.fit" in (data_dir / "logs" / "worker-train.log").read_text()
    assert run_cli_json(["report"], env)["run_id"] == report["run_id"]
    assert run_cli_json(["report", report["run_id"]], env)["metrics"] == report["metrics"]
    (row,) = run_cli_json(["runs"], env)
    assert row["run_id"] == report["run_id"] and row["video_auc"] == metrics["video_auc"]
    report_text = run_cli(["report"], env).stdout
    assert "(threshold-free)" in report_text
    assert all(line.startswith("WARNING: SMALL VALIDATION") for line in report_text.splitlines() if "WARNING" in line)

    # The run's own scores of its test crops, per video.
    run_dir = data_dir / "runs" / report["run_id"]
    by_video: dict[str, list[float]] = defaultdict(list)
    labels: dict[str, int] = {}
    with open(run_dir / "test_predictions.csv") as handle:
        for row in csv.DictReader(handle):
            crop = PurePosixPath(Path(row["crop_path"]).as_posix())
            rel = f"{crop.parent.parent.name}/{crop.parent.name}.mp4"  # .../<Folder>/<video>/<crop>.png
            by_video[rel].append(float(row["fake_probability"]))
            labels[rel] = int(row["label"])
    chosen = []  # the first and the last held-out video of each class
    for label in (0, 1):
        videos = sorted(rel for rel in by_video if labels[rel] == label)
        chosen += [videos[0], videos[-1]]

    blank = write_blank_video(tmp_path / "blank.mp4")
    judged = run_cli_json(["predict", *(str(dataset / rel) for rel in chosen), str(blank),
                           "--explain", str(tmp_path / "why")], env)

    assert judged[-1] == {"video": str(blank), "fake_probability": None, "label": None, "faces": 0,
                          "threshold": report["config"]["threshold"], "aggregate": "mean", "crop_probabilities": []}
    for rel, result in zip(chosen, judged):
        assert result["faces"] == len(by_video[rel]), rel
        assert sorted(result["crop_probabilities"]) == pytest.approx(sorted(by_video[rel]), abs=1e-4), rel
        assert result["fake_probability"] == pytest.approx(sum(by_video[rel]) / len(by_video[rel]), abs=1e-4), rel
        assert result["threshold"] == report["config"]["threshold"]
        assert Path(result["explanation"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A good video and a bad one: the good one is judged and printed, the command fails (exit 1).
    (tmp_path / "bad.txt").write_text("not a video")
    mixed = run_cli(["predict", str(dataset / chosen[0]), str(tmp_path / "bad.txt")], env)
    assert mixed.returncode == 1 and str(dataset / chosen[0]) in mixed.stdout and "not judged" in mixed.stdout
    assert mixed.stderr.strip() == "error: 1 of 2 videos could not be read"

    # Every run writes TensorBoard logs (scalars per epoch and per batches, the graph) and report.html.
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and (run_dir / "report.html").stat().st_size > 20000
    tags = tensorboard_tags(events)
    assert {"epoch_loss", "epoch_auc", "batch_loss", "keras"} <= tags, tags  # "keras": the model graph
    assert report["artifacts"]["report_html"] == str(run_dir / "report.html")


def tensorboard_tags(event_files) -> set[str]:
    import tensorflow as tf

    tags = set()
    for path in event_files:
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags.update(value.tag for value in event.summary.value)
            if event.graph_def:
                tags.add("<graph>")
    return tags
