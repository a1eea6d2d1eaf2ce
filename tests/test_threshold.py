"""The verdict threshold chosen on validation, and the warnings a doubtful run carries."""

from __future__ import annotations

import pytest

from workers.training.threshold import THRESHOLD_RULE, choose_threshold, run_warnings


def test_threshold_separates_a_model_that_ranks_well_but_sits_below_one_half():
    # The ResNet50-from-scratch case of issue #11: perfect ranking, every score under 0.5.
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.05, 0.10, 0.12, 0.30, 0.35, 0.45]

    chosen = choose_threshold(labels, scores)

    assert chosen["rule"] == THRESHOLD_RULE and chosen["warning"] is None
    assert chosen["balanced_accuracy"] == 1.0
    assert chosen["threshold"] == pytest.approx((0.12 + 0.30) / 2)


def test_threshold_maximises_balanced_accuracy_not_plain_accuracy():
    # 1 fake among 5 reals: plain accuracy would be content to call everything real.
    labels = [0, 0, 0, 0, 0, 1]
    scores = [0.1, 0.2, 0.3, 0.4, 0.6, 0.5]

    chosen = choose_threshold(labels, scores)

    # Catching the fake at 0.45 (TPR 1, TNR 4/5) beats missing it (TPR 0, TNR 1).
    assert chosen["threshold"] == pytest.approx(0.45)
    assert chosen["balanced_accuracy"] == pytest.approx(0.9)


@pytest.mark.parametrize("labels, scores, reason", [
    ([1, 1, 1], [0.2, 0.5, 0.9], "fake videos only"),
    ([0, 0], [0.2, 0.5], "real videos only"),
    ([], [], "no validation videos"),
    ([0, 1, 0, 1], [0.50194] * 4, "same score"),
])
def test_fallback_to_one_half_with_a_warning(labels, scores, reason):
    chosen = choose_threshold(labels, scores)

    assert chosen["threshold"] == 0.5
    assert reason in chosen["warning"] and reason in chosen["rule"]
    assert chosen["balanced_accuracy"] is None


def test_constant_model_and_one_class_validation_are_loud():
    warnings = run_warnings(test_labels=[0, 1, 0, 1], test_probabilities=[0.50194] * 4,
                            val_labels=[1, 1, 1], val_probabilities=[0.50194] * 3)

    assert any(w.startswith("CONSTANT MODEL") and "0.50194" in w for w in warnings)
    assert any(w.startswith("ONE-CLASS VALIDATION") and "fake crops only" in w for w in warnings)
    assert len(warnings) == 2  # the constant validation is the same news: said once


def test_a_healthy_run_has_no_warnings():
    assert run_warnings(test_labels=[0, 1, 0, 1], test_probabilities=[0.1, 0.8, 0.3, 0.7],
                        val_labels=[0, 1], val_probabilities=[0.2, 0.9], train_labels=[0, 1, 1]) == []


def test_empty_and_one_class_test_parts_are_named():
    warnings = run_warnings(test_labels=[0, 0], test_probabilities=[0.1, 0.3], val_labels=[])

    assert any(w.startswith("ONE-CLASS TEST") for w in warnings)
    assert any(w.startswith("EMPTY VALIDATION") for w in warnings)


def test_report_prints_warnings_before_any_number_and_threshold_free_numbers_first():
    from orchestrator.output import format_report

    metrics = {"warnings": ["CONSTANT MODEL: every one of the 17 test crops got 0.50194"], "video_auc": 0.5,
               "auc": 0.5, "threshold": 0.5, "threshold_rule": "fixed 0.5 (validation cannot choose: x)",
               "accuracy": 0.47, "n_videos": 4, "n": 17}
    report = {"run_id": "r", "status": "done", "metrics": metrics, "split": {}, "config": {},
              "artifacts": {"model": "m", "plots": []}}

    text = format_report(report)

    assert text.index("WARNING: CONSTANT MODEL") < text.index("auc 0.5000") < text.index("accuracy 0.4700")
    assert "threshold 0.5000: fixed 0.5" in text


def test_the_runs_folder_of_a_local_path_or_an_object_store_url():
    from orchestrator.output import parent_location

    assert parent_location("s3://pipeline/data/runs/20261207-1") == "s3://pipeline/data/runs"
    assert parent_location("s3://pipeline/data/runs/20261207-1/") == "s3://pipeline/data/runs"
    assert parent_location("/data/runs/20261207-1") == "/data/runs"
