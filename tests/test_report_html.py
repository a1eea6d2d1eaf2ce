"""report.html: self-contained, every image present, opened in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from workers.training.evaluate import compute_metrics
from workers.training.plots import plot_confusion_matrix, plot_history, plot_roc
from workers.training.report_html import RUN_IMAGES, write_report_html

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--disable-dev-shm-usage", "--virtual-time-budget=5000"]


@pytest.fixture
def run_dir(tmp_path):
    labels, probabilities, videos = [0, 0, 1, 1, 0, 1], [0.1, 0.3, 0.7, 0.6, 0.2, 0.4], [1, 1, 2, 2, 3, 4]
    metrics = compute_metrics(labels, probabilities, videos, threshold=0.35)
    metrics.update(threshold_rule="max balanced accuracy on validation videos", epochs_run=3, best_epoch=2,
                   warnings=["ONE-CLASS VALIDATION: the validation part holds fake crops only (3)"])
    plot_history({"loss": [0.7, 0.5, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [0.6, 0.5, 0.55],
                  "val_accuracy": [0.5, 0.7, 0.6]}, tmp_path / "history.png")
    plot_roc(labels, probabilities, tmp_path / "roc.png")
    plot_confusion_matrix(metrics["confusion_matrix"], tmp_path / "confusion_matrix.png")
    plot_confusion_matrix(metrics["video_confusion_matrix"], tmp_path / "video_confusion_matrix.png")
    (tmp_path / "evaluations").mkdir()
    (tmp_path / "evaluations" / "ffpp.json").write_text(
        '{"dataset": "FaceForensics++ c23", "metrics": {"n_videos": 20, "video_auc": 0.81, "auc": 0.77}}')
    report = {"run_id": "20261128-010000-abcd", "status": "done", "metrics": metrics,
              "config": {"backbone": "mobilenetv2", "weights": "none", "image_size": 64, "epochs": 3},
              "split": {"strategy": "video", "train_videos": 40, "val_videos": 8, "test_videos": 16,
                        "train_crops": 300, "val_crops": 60, "test_crops": 120, "shared_videos": 0,
                        "shared_sources": 0, "leaks": False},
              "artifacts": {"model": str(tmp_path / "model.keras")}, "created_at": "x", "finished_at": "y"}
    write_report_html(report, tmp_path)
    return tmp_path


def test_report_is_self_contained_and_carries_the_numbers(run_dir):
    page = (run_dir / "report.html").read_text()

    assert page.count('src="data:image/png;base64,') == len(RUN_IMAGES)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert "ONE-CLASS VALIDATION" in page and "FaceForensics++ c23" in page
    assert page.index("threshold-free") < page.index("At the run's threshold")
    assert "Leakage check" in page and "0.3500" in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_with_every_image(run_dir, tmp_path):
    page = (run_dir / "report.html").as_uri()

    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, "--dump-dom", page],
                         capture_output=True, text=True, timeout=120).stdout
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--screenshot={shot}", "--window-size=1200,2400", page],
                   capture_output=True, timeout=120)

    counts = re.search(r'data-images="(\d+)" data-images-loaded="(\d+)"', dom)
    assert counts, dom[-2000:]
    assert counts.groups() == (str(len(RUN_IMAGES)), str(len(RUN_IMAGES)))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000
