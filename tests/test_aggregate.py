"""Video scores from crop probabilities (mean, max, confident), per-rule thresholds and the
small-validation warning, on hand-made probabilities."""

import numpy as np
import pytest

from workers.training.aggregate import (
    aggregation_metrics, confident_score, frame_of, read_predictions, recompute_from_files,
    small_validation_warning, threshold_spread, video_scores, with_aggregation, write_predictions,
)


def test_mean_and_max_over_faces_then_frames():
    # Video 7: frame 1 has two faces (0.2, 0.9), frame 2 one face (0.4). Video 3: one face per frame.
    ids = [7, 7, 7, 3, 3]
    probs = [0.2, 0.9, 0.4, 0.1, 0.3]
    frames = ["a", "a", "b", "c", "d"]
    mean = video_scores(ids, probs, [1, 1, 1, 0, 0], rule="mean", frames=frames)
    assert mean.video_ids.tolist() == [3, 7]
    assert mean.scores == pytest.approx([0.2, 0.5])
    assert mean.labels.tolist() == [0, 1] and mean.crop_counts.tolist() == [2, 3]
    highest = video_scores(ids, probs, [1, 1, 1, 0, 0], rule="max", frames=frames)
    assert highest.scores == pytest.approx([0.2, (0.9 + 0.4) / 2])
    # Without frame keys each crop is its own frame: max is the mean.
    assert video_scores(ids, probs, rule="max").scores == pytest.approx([0.2, 0.5])


def test_confident_rule_follows_the_dfdc_winner():
    # 12 of 20 above 0.8 (> 11 and > 20 // 2.5 = 8): the mean of those alone.
    probs = [0.9] * 12 + [0.1] * 8
    assert confident_score(probs) == pytest.approx(0.9)
    # Only 11 confident fakes: not enough; 9 of 20 below 0.2 is not > 90 %: the plain mean.
    probs = [0.95] * 11 + [0.1] * 9
    assert confident_score(probs) == pytest.approx(np.mean(probs))
    # 19 of 20 below 0.2 (> 90 %): the mean of those.
    probs = [0.05] * 19 + [0.7]
    assert confident_score(probs) == pytest.approx(0.05)
    # 18 of 20 below 0.2 is exactly 90 %, not more: the plain mean.
    probs = [0.1] * 18 + [0.7, 0.7]
    assert confident_score(probs) == pytest.approx(np.mean(probs))
    # Many frames but confident fakes not more than n // 2.5 (40 // 2.5 = 16): plain mean.
    probs = [0.9] * 16 + [0.5] * 24
    assert confident_score(probs) == pytest.approx(np.mean(probs))
    assert video_scores([1] * 20, [0.9] * 12 + [0.1] * 8, rule="confident").scores == pytest.approx([0.9])


def test_mixed_labels_in_one_video_and_unknown_rule_are_refused():
    with pytest.raises(ValueError, match="different labels"):
        video_scores([1, 1], [0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match="unknown aggregation"):
        video_scores([1], [0.1], rule="median")


def test_frame_keys_come_from_the_crop_names():
    assert frame_of("/d/crops/1/Celeb-real/id0_0000/f000012_01.png") == "/d/crops/1/Celeb-real/id0_0000#12"
    assert frame_of("/d/x/f000012_00.png") == frame_of("/d/x/f000012_03.png") != frame_of("/d/x/f000013_00.png")
    assert frame_of("odd.png") == "odd.png"


def _crops(video_scores_by_label):
    """Two crops per video, each at the video's score, labels as given."""
    ids, probs, labels, frames = [], [], [], []
    for vid, (label, score) in enumerate(video_scores_by_label):
        for face in range(2):
            ids.append(vid)
            probs.append(score)
            labels.append(label)
            frames.append(f"{vid}:{face}")
    return {"video_ids": ids, "probabilities": probs, "labels": labels, "frames": frames}


def test_each_rule_gets_its_own_threshold_chosen_on_validation():
    # Validation: under "mean" the real videos sit at 0.2-0.3 and the fakes at 0.6-0.7.
    val = _crops([(0, 0.2), (0, 0.3), (1, 0.6), (1, 0.7)])
    test = _crops([(0, 0.1), (1, 0.9)])
    result = aggregation_metrics(val, test)
    assert set(result) == {"mean", "max", "confident"}
    assert result["mean"]["threshold"] == pytest.approx(0.45)
    assert result["mean"]["video_auc"] == 1.0 and result["mean"]["n_videos"] == 2
    assert result["mean"]["video_confusion_matrix"] == [[1, 0], [0, 1]]
    # 2 real and 2 fake validation videos: the warning says so and how the threshold moves.
    (warning,) = result["mean"]["warnings"]
    assert warning.startswith("SMALL VALIDATION: 2 real and 2 fake") and "bootstrap" in warning


def test_one_class_validation_falls_back_with_a_warning():
    val = _crops([(0, 0.2), (0, 0.3)])
    result = aggregation_metrics(val, _crops([(0, 0.1), (1, 0.9)]), fallback=0.5, rules=["mean"])
    assert result["mean"]["threshold"] == 0.5
    assert any("validation holds real videos only" in w for w in result["mean"]["warnings"])


def test_threshold_spread_is_wide_on_few_videos_and_narrow_on_many():
    rng = np.random.default_rng(1)
    few_labels = np.array([0, 0, 0, 1, 1, 1])
    few_scores = np.array([0.1, 0.35, 0.5, 0.3, 0.6, 0.9])
    low, high = threshold_spread(few_labels, few_scores, seed=0)
    assert high - low > 0.15
    many_labels = np.repeat([0, 1], 200)
    many_scores = np.concatenate([rng.uniform(0.0, 0.3, 200), rng.uniform(0.7, 1.0, 200)])
    low, high = threshold_spread(many_labels, many_scores, seed=0)
    assert high - low < 0.1
    assert small_validation_warning(many_labels, many_scores, 0.5, "mean") is None
    assert threshold_spread([0, 0], [0.1, 0.2]) is None


def test_stored_predictions_recompute_any_rule(tmp_path):
    paths = [f"/c/v{v}/f{frame:06d}_{face:02d}.png" for v in (1, 2) for frame in (0, 1) for face in (0, 1)]
    ids = [1] * 4 + [2] * 4
    labels = [0] * 4 + [1] * 4
    probs = [0.1, 0.3, 0.1, 0.3, 0.2, 0.9, 0.2, 0.9]
    write_predictions(tmp_path / "test_predictions.csv", paths, ids, labels, probs)
    write_predictions(tmp_path / "val_predictions.csv", paths, ids, labels, probs)
    stored = read_predictions(tmp_path / "test_predictions.csv")
    assert stored["probabilities"] == pytest.approx(probs) and len(set(stored["frames"])) == 4
    mean = recompute_from_files(tmp_path, "mean")
    highest = recompute_from_files(tmp_path, "max")
    assert mean["video_auc"] == highest["video_auc"] == 1.0
    # Mean scores 0.2 / 0.55, max-over-faces 0.3 / 0.9: each threshold sits in its own gap.
    assert mean["threshold"] == pytest.approx(0.375) and highest["threshold"] == pytest.approx(0.6)
    metrics = {"video_auc": 0.5, "threshold": 0.5, "warnings": ["CONSTANT MODEL: x", "SMALL VALIDATION: mean"],
               "aggregations": {"max": highest}}
    chosen = with_aggregation(metrics, "max")
    assert chosen["threshold"] == pytest.approx(0.6) and chosen["aggregate"] == "max"
    assert chosen["warnings"][0] == "CONSTANT MODEL: x" and "the max threshold" in chosen["warnings"][1]
    assert len(chosen["warnings"]) == 2
    assert with_aggregation(metrics, "confident") is metrics
