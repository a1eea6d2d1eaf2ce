"""The verdict threshold of a run, chosen on its validation part, and the warnings a run must carry.

Why not 0.5: a model trained from scratch can rank perfectly and still sit on the wrong side
of 0.5 (measured: ResNet50 from scratch, video AUC 1.0, yet 15 of 23 fake crops called real at
0.5). The threshold is a property of the trained model; it is chosen on the validation part
(never on the test set) and recorded in the run, so that `report`, `predict` and any later
evaluation judge with the same one.

Rule (``THRESHOLD_RULE``): over the validation **videos** (mean fake probability of each
video's crops, as `predict` judges), take the cut that maximises balanced accuracy
(= (TPR + TNR) / 2, the same as Youden's J); among equally good cuts, the widest gap between
neighbouring scores; the threshold is the midpoint of that gap. With one class in validation
(or no validation) there is nothing to balance: the fallback (0.5) is used, with a warning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

THRESHOLD_RULE = "max balanced accuracy on validation videos (midpoint of the widest best gap)"
FALLBACK_RULE = "fixed 0.5 (validation cannot choose: {reason})"
DEFAULT_THRESHOLD = 0.5
# Probabilities closer together than this count as one value (a constant model's outputs differ
# in the 7th digit from float32 noise).
CONSTANT_SPREAD = 1e-4


def choose_threshold(
    labels: Sequence[int], scores: Sequence[float], fallback: float = DEFAULT_THRESHOLD
) -> dict:
    """{"threshold", "rule", "balanced_accuracy" (on the scores given, None on fallback),
    "warning" (None, or why the fallback was used)}.

    ``labels``: 0 real, 1 fake; ``scores``: fake probabilities, one per item (videos).
    """
    labels = np.asarray(labels, dtype=int).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    n_fake = int(labels.sum())
    if len(labels) == 0:
        return _fallback(fallback, "no validation videos")
    if n_fake == 0 or n_fake == len(labels):
        only = "fake" if n_fake else "real"
        return _fallback(fallback, f"validation holds {only} videos only")
    if np.ptp(scores) < CONSTANT_SPREAD:
        return _fallback(fallback, "the model gives every validation video the same score")

    # Candidate cuts: between each pair of neighbouring distinct scores, and outside both ends.
    distinct = np.unique(scores)
    cuts = np.concatenate([[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1e-6]])
    gaps = np.concatenate([[0.0], np.diff(distinct), [0.0]])
    n_real = len(labels) - n_fake
    best_key, best = None, None
    for cut, gap in zip(cuts, gaps):
        predicted_fake = scores >= cut
        tpr = np.sum(predicted_fake & (labels == 1)) / n_fake
        tnr = np.sum(~predicted_fake & (labels == 0)) / n_real
        balanced = (tpr + tnr) / 2
        key = (round(float(balanced), 12), float(gap))
        if best_key is None or key > best_key:
            best_key, best = key, (float(cut), float(balanced))
    threshold = float(np.clip(best[0], 0.0, 1.0))
    return {"threshold": threshold, "rule": THRESHOLD_RULE, "balanced_accuracy": best[1], "warning": None}


def _fallback(fallback: float, reason: str) -> dict:
    return {
        "threshold": float(fallback),
        "rule": FALLBACK_RULE.format(reason=reason).replace("0.5", f"{fallback:g}"),
        "balanced_accuracy": None,
        "warning": f"threshold not chosen on validation ({reason}): fixed {fallback:g} used",
    }


def run_warnings(
    *,
    test_labels: Sequence[int],
    test_probabilities: Sequence[float],
    val_labels: Sequence[int],
    val_probabilities: Sequence[float] | None = None,
    train_labels: Sequence[int] | None = None,
) -> list[str]:
    """Loud, plain-language warnings for a run whose numbers must not be taken at face value:
    constant predictions, a one-class (or empty) validation or test part."""
    warnings: list[str] = []
    test_labels = np.asarray(test_labels, dtype=int).reshape(-1)
    test_probabilities = np.asarray(test_probabilities, dtype=np.float64).reshape(-1)
    val_labels = np.asarray(val_labels, dtype=int).reshape(-1)

    if len(test_probabilities) > 1 and np.ptp(test_probabilities) < CONSTANT_SPREAD:
        warnings.append(
            f"CONSTANT MODEL: every one of the {len(test_probabilities)} test crops got "
            f"{float(test_probabilities[0]):.5f} (spread {np.ptp(test_probabilities):.1e}); "
            "the model has learnt nothing usable and its AUC means nothing"
        )
    if val_probabilities is not None:
        val_probabilities = np.asarray(val_probabilities, dtype=np.float64).reshape(-1)
        if len(val_probabilities) > 1 and np.ptp(val_probabilities) < CONSTANT_SPREAD and not (
            len(test_probabilities) > 1 and np.ptp(test_probabilities) < CONSTANT_SPREAD
        ):
            warnings.append("CONSTANT ON VALIDATION: every validation crop got the same probability")
    for part, labels in (("validation", val_labels), ("test", test_labels)):
        problem = _class_problem(labels)
        if problem:
            consequence = (
                "the checkpoint and the threshold were chosen on it"
                if part == "validation"
                else "AUC, AP and EER are undefined"
            )
            kind = "EMPTY" if problem == "is empty" else "ONE-CLASS"
            warnings.append(f"{kind} {part.upper()}: the {part} part {problem}; {consequence}")
    if train_labels is not None:
        problem = _class_problem(np.asarray(train_labels, dtype=int).reshape(-1))
        if problem:
            kind = "EMPTY" if problem == "is empty" else "ONE-CLASS"
            warnings.append(f"{kind} TRAINING: the training part {problem}")
    return warnings


def _class_problem(labels: np.ndarray) -> str | None:
    if len(labels) == 0:
        return "is empty"
    n_fake = int(labels.sum())
    if n_fake == 0:
        return f"holds real crops only ({len(labels)})"
    if n_fake == len(labels):
        return f"holds fake crops only ({len(labels)})"
    return None
