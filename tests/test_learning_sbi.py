"""The self-blended learning guard (issue 17, item 4): `train --fakes sbi` on the sample data's REAL
videos only should detect its fakes, which are blends, in the test part (video AUC >= 0.9 on >= 8
test videos of each class), with the CPU recipe of docs/detectors.md. Through `orchestrator` in
embedded mode, as the other learning guard (tests/test_learning.py). One run: the first test checks
that the split, the report and report.html say that training saw no fake video and how many
pseudo-fakes were made, and that `report --aggregate` recomputes video scores from the stored crop
probabilities; the second, the AUC bar, is an expected failure until a CPU recipe reaches it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_cli, run_cli_json, train_on_the_demo_sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The guard's cheap CPU settings (docs/detectors.md, run 18; the best CLI recipe measured, run 14, is longer).
SBI_EVERY_S = 1.0
SBI_TRAIN = ["train", "--fakes", "sbi", "--backbone", "tiny", "--weights", "none", "--image-size", "64",
             "--epochs", "15", "--lr", "0.001", "--batch-size", "16"]
MIN_VIDEO_AUC = 0.9
MIN_TEST_VIDEOS_PER_CLASS = 8


@pytest.fixture(scope="module")
def sbi_run(tmp_path_factory):
    report, env, _, _ = train_on_the_demo_sample(tmp_path_factory.mktemp("sbi"), SBI_EVERY_S, SBI_TRAIN)
    print({k: report["metrics"].get(k) for k in ("video_auc", "auc", "threshold", "video_n_real", "video_n_fake",
                                                 "epochs_run", "best_epoch", "pseudo_fakes")})
    return report, env


def test_self_blended_run_trains_on_real_videos_only_and_says_so(sbi_run):
    report, env = sbi_run
    split, metrics = report["split"], report["metrics"]
    # Training saw real videos only; the test part kept its fakes; nothing leaks.
    assert split["fakes"] == "sbi" and split["train_fake_videos"] == split["val_fake_videos"] == 0
    assert split["dropped_fake_videos"] > 0 and split["test_fake_videos"] >= MIN_TEST_VIDEOS_PER_CLASS
    assert split["shared_videos"] == 0 and split["shared_sources"] == 0
    made = metrics["pseudo_fakes"]
    assert made["per_epoch"] > 0 and made["train_made"] == made["per_epoch"] * made["epochs_run"]
    assert made["validation"] > 0
    assert min(metrics["video_n_real"], metrics["video_n_fake"]) >= MIN_TEST_VIDEOS_PER_CLASS, metrics

    run_dir = Path(report["artifacts"]["dir"])
    assert (run_dir / "sbi_examples.png").is_file() and (run_dir / "val_predictions.csv").is_file()
    page = (run_dir / "report.html").read_text()
    assert "pseudo-fakes" in page and page.count("data:image/png;base64,") >= 5
    text = run_cli(["report", report["run_id"]], env).stdout
    assert "the training part holds 0 fake videos" in text

    # Any video rule from the stored crop probabilities, each with its own threshold.
    for rule in ("max", "confident"):
        other = run_cli_json(["report", report["run_id"], "--aggregate", rule], env)["metrics"]
        assert other["aggregate"] == rule and other["video_auc"] is not None
        assert other["threshold"] == metrics["aggregations"][rule]["threshold"]


@pytest.mark.xfail(reason="not reached on the CPU yet: tiny from scratch at 64 px learns SBI's pseudo-fakes "
                          "slowly and its scores cluster by face; through the CLI the best recipe measured (45 "
                          "epochs, lr 3e-4, 4x the crops, --augment off, --keep average: 7.5 min) gave video AUC "
                          "0.82, these cheap settings 0.36 (docs/detectors.md has the table)", strict=False)
def test_self_blended_run_detects_the_sample_fakes(sbi_run):
    report, _ = sbi_run
    metrics = report["metrics"]
    assert metrics["video_auc"] >= MIN_VIDEO_AUC, {k: metrics[k] for k in ("video_auc", "auc", "video_accuracy")}
