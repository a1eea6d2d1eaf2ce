"""Video scores the way the field computes them, from stored per-crop probabilities.

A run keeps every validation and test crop's fake probability (``val_predictions.csv``,
``test_predictions.csv``), so a video score under any rule is recomputed here without the model:

- ``mean``: the mean of the crops' probabilities (DeepfakeBench's video AUC);
- ``max``: per frame the max over its faces, then the mean over frames (SBI's inference);
- ``confident``: the DFDC winner's ``confident_strategy`` (selimsef/dfdc_deepfake_challenge,
  ``kernel_utils.py``, t = 0.8): when more than 11 crops, and more than n // 2.5 of them, score
  above 0.8, the mean of those; else when more than 90 % score below 0.2, the mean of those; else
  the plain mean.

Each rule's threshold is chosen on the validation videos scored by that rule
(``workers/training/threshold.py``). A threshold chosen on a handful of videos moves a lot with
which videos happened to land in validation: fewer than ``MIN_VALIDATION_VIDEOS`` of a class gives
a warning with the threshold's range over bootstrap resamples of the validation videos.
No TensorFlow here.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from shared.train_config import AGGREGATIONS
from workers.training.evaluate import binary_metrics
from workers.training.threshold import choose_threshold

CONFIDENT_T = 0.8
CONFIDENT_MIN_FAKES = 11
CONFIDENT_REAL_T, CONFIDENT_REAL_SHARE = 0.2, 0.9
MIN_VALIDATION_VIDEOS = 10
BOOTSTRAP_RESAMPLES = 200
# Crop files are named f<frame>_<face>.png by the ingest (workers.ingest.crop_file_name).
_CROP_NAME = re.compile(r"f(\d+)_(\d+)\.png$")
PREDICTION_COLUMNS = ["crop_path", "video_id", "label", "fake_probability"]
_THRESHOLD_WARNINGS = ("SMALL VALIDATION", "threshold not chosen")


class VideoScores(NamedTuple):
    """One entry per video, sorted by video id."""

    video_ids: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    crop_counts: np.ndarray


def check_rule(rule: str) -> str:
    if rule not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {rule!r}: one of {', '.join(AGGREGATIONS)}")
    return rule


def confident_score(probabilities: Sequence[float]) -> float:
    """The DFDC winner's rule on one video's crop probabilities."""
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    n = len(p)
    fakes = int(np.count_nonzero(p > CONFIDENT_T))
    if fakes > n // 2.5 and fakes > CONFIDENT_MIN_FAKES:
        return float(np.mean(p[p > CONFIDENT_T]))
    if np.count_nonzero(p < CONFIDENT_REAL_T) > CONFIDENT_REAL_SHARE * n:
        return float(np.mean(p[p < CONFIDENT_REAL_T]))
    return float(np.mean(p))


def frame_of(path: str) -> str:
    """The frame a crop file belongs to (its folder and frame number); a crop whose name does not
    say is a frame of its own."""
    match = _CROP_NAME.search(str(path))
    if match is None:
        return str(path)
    return f"{Path(path).parent}#{int(match.group(1))}"


def video_scores(video_ids: Sequence, probabilities: Sequence[float], labels: Sequence[int] | None = None,
                 *, rule: str = "mean", frames: Sequence | None = None) -> VideoScores:
    """Each video's score under ``rule``. ``frames``: a frame key per crop (``max`` takes the max
    over the crops of one frame); None: every crop is its own frame. ``labels`` (0/1 per crop) must
    agree within a video (ValueError otherwise); None gives labels of -1."""
    check_rule(rule)
    video_ids = np.asarray(video_ids)
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.full(len(p), -1) if labels is None else np.asarray(labels, dtype=int).reshape(-1)
    if not (len(video_ids) == len(p) == len(y)) or (frames is not None and len(frames) != len(p)):
        raise ValueError(f"{len(video_ids)} video ids, {len(p)} probabilities, {len(y)} labels"
                         + ("" if frames is None else f", {len(frames)} frames"))
    unique_ids, index = np.unique(video_ids, return_inverse=True)
    scores, video_labels, counts = [], [], []
    for v in range(len(unique_ids)):
        members = np.flatnonzero(index == v)
        crop_labels = set(y[members].tolist())
        if len(crop_labels) > 1:
            raise ValueError(f"crops of one video have different labels: video {unique_ids[v]}")
        probs = p[members]
        if rule == "mean":
            score = float(np.mean(probs))
        elif rule == "max":
            keys = [frames[i] for i in members] if frames is not None else list(range(len(members)))
            per_frame: dict = {}
            for key, value in zip(keys, probs):
                per_frame[key] = max(per_frame.get(key, -np.inf), value)
            score = float(np.mean(list(per_frame.values())))
        else:
            score = confident_score(probs)
        scores.append(score)
        video_labels.append(crop_labels.pop())
        counts.append(len(members))
    return VideoScores(unique_ids, np.asarray(scores, dtype=np.float64), np.asarray(video_labels, dtype=int),
                       np.asarray(counts, dtype=int))


def threshold_spread(labels: Sequence[int], scores: Sequence[float], *, seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES, fallback: float = 0.5) -> tuple[float, float] | None:
    """The 5th and 95th percentiles of the chosen threshold over bootstrap resamples of the
    validation videos (each class resampled on its own, so every resample holds both); None
    without both classes."""
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=np.float64)
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    if len(real) == 0 or len(fake) == 0:
        return None
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(resamples):
        pick = np.concatenate([rng.choice(real, len(real)), rng.choice(fake, len(fake))])
        chosen.append(choose_threshold(labels[pick], scores[pick], fallback=fallback)["threshold"])
    low, high = np.percentile(chosen, [5, 95])
    return float(low), float(high)


def small_validation_warning(labels: Sequence[int], scores: Sequence[float], threshold: float, rule: str,
                             *, seed: int = 0) -> str | None:
    """A warning when a class has fewer than MIN_VALIDATION_VIDEOS validation videos, with how the
    threshold moves over bootstrap resamples; None otherwise (or without validation videos, which
    the run's own warnings cover)."""
    labels = np.asarray(labels, dtype=int)
    n_real, n_fake = int(np.sum(labels == 0)), int(np.sum(labels == 1))
    if not len(labels) or min(n_real, n_fake) >= MIN_VALIDATION_VIDEOS:
        return None
    text = (f"SMALL VALIDATION: {n_real} real and {n_fake} fake validation videos (fewer than "
            f"{MIN_VALIDATION_VIDEOS} in a class): the {rule} threshold {threshold:.3f} is not to be trusted")
    spread = threshold_spread(labels, scores, seed=seed, fallback=threshold)
    if spread is not None:
        text += (f"; over {BOOTSTRAP_RESAMPLES} bootstrap resamples of the validation videos it ranges "
                 f"{spread[0]:.3f} to {spread[1]:.3f} (5th to 95th percentile)")
    return text + "; ingest more videos or raise the validation share"


def video_metrics(video_ids, probabilities, labels, *, rule: str, threshold: float, frames=None) -> dict:
    """binary_metrics of the videos scored by ``rule``, keys prefixed "video_" (n -> n_videos)."""
    videos = video_scores(video_ids, probabilities, labels, rule=rule, frames=frames)
    metrics = binary_metrics(videos.labels, videos.scores, threshold)
    out = {"n_videos": metrics.pop("n")}
    out.update({f"video_{key}": value for key, value in metrics.items()})
    return out


def aggregation_metrics(val: dict | None, test: dict, *, fallback: float = 0.5, seed: int = 0,
                        rules: Sequence[str] = AGGREGATIONS) -> dict:
    """rule -> {"threshold", "threshold_rule", "balanced_accuracy", "val_video_auc", "warnings",
    video_* metrics of the test crops at that threshold}. ``val``/``test``: {"video_ids",
    "probabilities", "labels", "frames" (optional)} of the crops."""
    result = {}
    for rule in rules:
        warnings = []
        val_auc = None
        if val is not None and len(val["probabilities"]):
            scored = video_scores(val["video_ids"], val["probabilities"], val["labels"], rule=rule,
                                  frames=val.get("frames"))
            chosen = choose_threshold(scored.labels, scored.scores, fallback=fallback)
            val_auc = binary_metrics(scored.labels, scored.scores, chosen["threshold"])["auc"]
            small = small_validation_warning(scored.labels, scored.scores, chosen["threshold"], rule, seed=seed)
            warnings += [w for w in (chosen["warning"], small) if w]
        else:
            chosen = choose_threshold([], [], fallback=fallback)
        entry = {"threshold": chosen["threshold"], "threshold_rule": chosen["rule"],
                 "balanced_accuracy": chosen["balanced_accuracy"], "val_video_auc": val_auc,
                 "warnings": warnings}
        entry.update(video_metrics(test["video_ids"], test["probabilities"], test["labels"], rule=rule,
                                   threshold=chosen["threshold"], frames=test.get("frames")))
        result[rule] = entry
    return result


def with_aggregation(metrics: dict, rule: str) -> dict:
    """A run's or an evaluation's metrics with the video numbers (and threshold) of ``rule`` in
    place of the top-level ones; unchanged when it stored no such aggregation."""
    stored = (metrics.get("aggregations") or {}).get(rule)
    if stored is None:
        return metrics
    out = {**metrics, **{k: v for k, v in stored.items() if k.startswith("video_") or k == "n_videos"}}
    out.update(aggregate=rule, threshold=stored.get("threshold", metrics.get("threshold")),
               threshold_rule=stored.get("threshold_rule", metrics.get("threshold_rule")))
    if "warnings" in stored:  # what validation said about this rule's threshold, not the run's own rule's
        kept = [w for w in metrics.get("warnings") or [] if not w.startswith(_THRESHOLD_WARNINGS)]
        out["warnings"] = kept + list(stored["warnings"])
    return out


def write_predictions(path: Path, paths: Sequence[str], video_ids, labels, probabilities) -> Path:
    """One row per crop: its file, video, label and fake probability (what aggregation needs)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        writer.writerows(zip(paths, [int(v) for v in video_ids], [int(y) for y in labels],
                             [float(p) for p in probabilities]))
    return path


def read_predictions(path: Path) -> dict:
    """{"paths", "video_ids", "labels", "probabilities", "frames"} of a predictions CSV."""
    columns: dict[str, list] = {"paths": [], "video_ids": [], "labels": [], "probabilities": []}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            columns["paths"].append(row["crop_path"])
            columns["video_ids"].append(int(row["video_id"]))
            columns["labels"].append(int(row["label"]))
            columns["probabilities"].append(float(row["fake_probability"]))
    columns["frames"] = [f"{v}:{frame_of(p)}" for v, p in zip(columns["video_ids"], columns["paths"])]
    return columns


def recompute_from_files(run_dir: Path, rule: str, *, val_file: str = "val_predictions.csv",
                         test_file: str = "test_predictions.csv", fallback: float = 0.5) -> dict:
    """The ``aggregation_metrics`` entry of one rule, from a run folder's stored predictions (no
    model): the threshold chosen on its validation crops when stored, else ``fallback``."""
    run_dir = Path(run_dir)
    val_path = run_dir / val_file
    val = read_predictions(val_path) if val_path.is_file() else None
    test = read_predictions(run_dir / test_file)
    return aggregation_metrics(val, test, fallback=fallback, rules=[check_rule(rule)])[rule]


def scored_at_run_thresholds(paths, video_ids, labels, probabilities, run_metrics: dict,
                             rules: Sequence[str] = AGGREGATIONS) -> dict:
    """rule -> video metrics of these crops at the run's threshold for that rule (an evaluation on
    another dataset judges as the run would; a run that stored no such rule: its one threshold)."""
    frames = [f"{v}:{frame_of(p)}" for v, p in zip(video_ids, paths)]
    stored = run_metrics.get("aggregations") or {}
    result = {}
    for rule in rules:
        threshold = (stored.get(rule) or {}).get("threshold", run_metrics.get("threshold", 0.5))
        result[rule] = {"threshold": threshold,
                        "threshold_rule": (stored.get(rule) or {}).get("threshold_rule", run_metrics.get("threshold_rule")),
                        **video_metrics(video_ids, probabilities, labels, rule=rule, threshold=threshold, frames=frames)}
    return result
