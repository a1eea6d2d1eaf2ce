from __future__ import annotations

import json
import math

import numpy as np
import pytest

from workers.training.evaluate import compute_metrics, equal_error_rate, video_scores
from workers.training.plots import plot_confusion_matrix, plot_history, plot_roc

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_frame_metrics_on_a_crafted_case():
    y_true = [0, 0, 1, 1]
    y_prob = [0.1, 0.6, 0.4, 0.9]

    metrics = compute_metrics(y_true, y_prob, video_ids=None)

    assert metrics["accuracy"] == 0.5
    assert metrics["confusion_matrix"] == [[1, 1], [1, 1]]
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["f1"] == 0.5
    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["eer"] == pytest.approx(0.5)
    assert metrics["n"] == 4 and metrics["n_real"] == 2 and metrics["n_fake"] == 2
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert metrics["loss"] == pytest.approx(expected_loss)
    assert "video_auc" not in metrics


def test_perfect_separation_has_zero_eer_and_unit_auc():
    metrics = compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.7], video_ids=None)

    assert metrics["accuracy"] == 1.0
    assert metrics["auc"] == 1.0
    assert metrics["ap"] == 1.0
    assert metrics["eer"] == 0.0
    assert metrics["confusion_matrix"] == [[2, 0], [0, 2]]


def test_eer_where_false_positive_and_false_negative_rates_cross():
    # Ranked by score: fake, real, fake, real, real. FPR is 1/3 where FNR drops from 0.5 to 0.
    eer, threshold = equal_error_rate(np.array([1, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.6, 0.5]))

    assert eer == pytest.approx(1 / 3)
    assert threshold == pytest.approx(0.7)


def test_threshold_decides_the_predicted_class():
    metrics = compute_metrics([0, 1], [0.3, 0.6], video_ids=None, threshold=0.7)

    assert metrics["confusion_matrix"] == [[1, 0], [1, 0]]
    assert metrics["threshold"] == 0.7


def test_video_level_uses_the_mean_probability_of_each_video():
    video_ids = ["a", "a", "b", "b", "c"]
    y_true = [0, 0, 1, 1, 1]
    y_prob = [0.2, 0.6, 0.7, 0.3, 0.9]

    metrics = compute_metrics(y_true, y_prob, video_ids)

    # Crops: one real called fake (0.6), one fake missed (0.3).
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    # Videos: a=0.4 (real), b=0.5 (fake, >= threshold), c=0.9 (fake): all right.
    assert metrics["n_videos"] == 3
    assert metrics["video_accuracy"] == 1.0
    assert metrics["video_confusion_matrix"] == [[1, 0], [0, 2]]
    assert metrics["video_auc"] == 1.0


def test_video_scores_returns_one_sorted_entry_per_video():
    scores = video_scores([7, 3, 7, 3, 5], [0.2, 1.0, 0.4, 0.5, 0.9], [1, 0, 1, 0, 1])

    assert scores.video_ids.tolist() == [3, 5, 7]
    np.testing.assert_allclose(scores.probabilities, [0.75, 0.9, 0.3])
    assert scores.labels.tolist() == [0, 1, 1]
    assert scores.crop_counts.tolist() == [2, 1, 2]


def test_video_with_mixed_labels_is_an_error():
    with pytest.raises(ValueError, match="different labels"):
        video_scores(["a", "a"], [0.1, 0.9], [0, 1])


def test_one_class_only_gives_none_for_ranking_metrics():
    metrics = compute_metrics([1, 1, 1], [0.9, 0.2, 0.8], ["a", "b", "b"])

    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["confusion_matrix"] == [[0, 0], [1, 2]]
    for key in ("auc", "ap", "eer", "video_auc", "video_ap", "video_eer"):
        assert metrics[key] is None
    assert math.isfinite(metrics["loss"])


def test_no_predictions_gives_none_without_crashing():
    metrics = compute_metrics([], [], [])

    assert metrics["n"] == 0 and metrics["n_videos"] == 0
    assert metrics["accuracy"] is None and metrics["video_auc"] is None
    assert metrics["confusion_matrix"] == [[0, 0], [0, 0]]


def test_metrics_are_json_serialisable():
    metrics = compute_metrics([0, 1, 1], np.array([0.2, 0.7, 0.4], dtype=np.float32), np.array([1, 2, 2]))

    assert json.loads(json.dumps(metrics)) == metrics


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0.5], None)


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5000


def test_plots_write_png_files(tmp_path):
    history = {
        "loss": [0.7, 0.5, 0.4],
        "accuracy": [0.5, 0.7, 0.8],
        "val_loss": [0.69, 0.6, 0.62],
        "val_accuracy": [0.5, 0.65, 0.6],
    }
    written = [
        plot_history(history, tmp_path / "history.png"),
        plot_history({"loss": [0.7], "accuracy": [0.5]}, tmp_path / "history_no_val.png"),
        plot_confusion_matrix([[40, 10], [5, 45]], tmp_path / "cm.png"),
        plot_confusion_matrix([[0, 0], [3, 7]], tmp_path / "plots" / "cm_empty_row.png"),
        plot_roc([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], tmp_path / "roc.png"),
        plot_roc([1, 1], [0.6, 0.9], tmp_path / "roc_one_class.png"),
    ]

    for path in written:
        assert_png(path)
