"""Metrics of fake probabilities against labels, per crop (frame level) and per video.

Every value is a plain Python number, list or None, ready for JSON. A metric that is
undefined for the input (AUC with one class present, anything on no crops) is None.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

# Same clipping as Keras's binary cross-entropy, so the loss here matches training's.
PROBABILITY_EPSILON = 1e-7


class VideoScores(NamedTuple):
    """One entry per video, sorted by video id."""

    video_ids: np.ndarray
    probabilities: np.ndarray  # mean fake probability of the video's crops
    labels: np.ndarray
    crop_counts: np.ndarray


def compute_metrics(
    y_true: Sequence[int],
    y_prob: Sequence[float],
    video_ids: Sequence | None,
    threshold: float = 0.5,
) -> dict:
    """Frame-level metrics over crops, and video-level ones ("video_" prefix) over per-video
    mean probabilities. A probability >= ``threshold`` means fake.

    Keys: n, n_real, n_fake, loss, accuracy, precision, recall, f1, auc, ap, eer,
    eer_threshold, confusion_matrix ([[tn, fp], [fn, tp]]), the same with "video_" in front
    (and n_videos), and threshold. Without ``video_ids`` the video keys are absent.
    """
    y_true = np.asarray(y_true, dtype=int).reshape(-1)
    y_prob = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    if y_true.shape != y_prob.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_prob)} probabilities")
    metrics = {"threshold": float(threshold), **binary_metrics(y_true, y_prob, threshold)}
    if video_ids is not None:
        videos = video_scores(video_ids, y_prob, y_true)
        video_metrics = binary_metrics(videos.labels, videos.probabilities, threshold)
        metrics["n_videos"] = video_metrics.pop("n")
        metrics.update({f"video_{key}": value for key, value in video_metrics.items()})
    return metrics


def video_scores(video_ids: Sequence, y_prob: Sequence[float], y_true: Sequence[int]) -> VideoScores:
    """Mean fake probability and label of each video. Raises ValueError when the crops of
    one video carry different labels (a video is real or fake as a whole)."""
    video_ids = np.asarray(video_ids)
    y_prob = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    y_true = np.asarray(y_true, dtype=int).reshape(-1)
    if not (len(video_ids) == len(y_prob) == len(y_true)):
        raise ValueError(
            f"{len(video_ids)} video ids, {len(y_prob)} probabilities, {len(y_true)} labels"
        )
    unique_ids, index, counts = np.unique(video_ids, return_inverse=True, return_counts=True)
    probability_sums = np.bincount(index, weights=y_prob, minlength=len(unique_ids))
    fake_counts = np.bincount(index, weights=y_true, minlength=len(unique_ids))
    mixed = (fake_counts > 0) & (fake_counts < counts)
    if mixed.any():
        examples = unique_ids[mixed][:5].tolist()
        raise ValueError(f"crops of one video have different labels: videos {examples}")
    return VideoScores(
        video_ids=unique_ids,
        probabilities=probability_sums / np.maximum(counts, 1),
        labels=(fake_counts > 0).astype(int),
        crop_counts=counts,
    )


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> dict:
    """Threshold and ranking metrics of one set of predictions (crops or videos)."""
    n = int(len(y_true))
    n_fake = int(np.sum(y_true == 1))
    metrics = {"n": n, "n_real": n - n_fake, "n_fake": n_fake}
    if n == 0:
        undefined = ("loss", "accuracy", "precision", "recall", "f1", "auc", "ap", "eer", "eer_threshold")
        return {**metrics, **dict.fromkeys(undefined), "confusion_matrix": [[0, 0], [0, 0]]}

    y_pred = (y_prob >= threshold).astype(int)
    clipped = np.clip(y_prob, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    metrics.update(
        loss=float(log_loss(y_true, clipped, labels=[0, 1])),
        accuracy=float(accuracy_score(y_true, y_pred)),
        precision=float(precision_score(y_true, y_pred, labels=[0, 1], zero_division=0)),
        recall=float(recall_score(y_true, y_pred, labels=[0, 1], zero_division=0)),
        f1=float(f1_score(y_true, y_pred, labels=[0, 1], zero_division=0)),
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
    )
    both_classes = 0 < n_fake < n
    metrics["auc"] = float(roc_auc_score(y_true, y_prob)) if both_classes else None
    metrics["ap"] = float(average_precision_score(y_true, y_prob)) if both_classes else None
    eer, eer_threshold = equal_error_rate(y_true, y_prob) if both_classes else (None, None)
    metrics.update(eer=eer, eer_threshold=eer_threshold)
    return metrics


def equal_error_rate(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[float, float]:
    """The rate at which false positives equal false negatives, interpolated on the ROC curve,
    and the score threshold closest to it. Needs both classes."""
    fpr, tpr, thresholds = roc_curve(y_true, y_prob, drop_intermediate=False)
    fnr = 1 - tpr
    gap = fnr - fpr  # 1 at the first point (threshold inf), -1 at the last: it crosses 0
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0 or i == 0:
        eer = fpr[i]
    else:
        # Along the segment from point i-1 to i, fpr and fnr change linearly: meet where gap is 0.
        t = gap[i - 1] / (gap[i - 1] - gap[i])
        eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    return float(eer), float(min(thresholds[i], 1.0))
