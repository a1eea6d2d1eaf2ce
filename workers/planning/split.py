"""Train / validation / test splits that do not leak, and the check that proves it.

``video`` (default): whole groups of videos go to one side. A group is a source identity: the
real videos of ``id0`` and every fake made from them. A fake shares face, background and
motion with its source video, so splitting them apart would test on what was trained on.
``official``: the videos marked by List_of_testing_videos.txt are the test set.
``frame``: a random split over crops, as the old notebook did; it leaks, and says so.
The validation part is always carved from the training side; the test set is never seen
before the final evaluation.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from shared.errors import InputError
from shared.labels import FAKE, LABEL_NAMES, REAL, TEST_LIST_NAME
from shared.train_config import SPLIT_STRATEGIES

TRAIN, VAL, TEST = "train", "val", "test"
PARTS = (TRAIN, VAL, TEST)
STRATEGIES = SPLIT_STRATEGIES


@dataclass(frozen=True)
class CropRef:
    crop_id: int
    video_id: int
    label: int
    group_key: str
    official_test: bool


def _assign_groups(groups: dict[str, list[CropRef]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Greedy stratified assignment of whole groups to parts.

    Groups are visited from the largest (in videos) down, ties in a seeded random order, and
    each goes to the part whose per-label deficit this group fills best.
    """
    def videos_by_label(refs: list[CropRef]) -> dict[int, int]:
        counts = defaultdict(set)
        for ref in refs:
            counts[ref.label].add(ref.video_id)
        return {label: len(ids) for label, ids in counts.items()}

    group_counts = {key: videos_by_label(refs) for key, refs in groups.items()}
    totals = defaultdict(int)
    for counts in group_counts.values():
        for label, n in counts.items():
            totals[label] += n
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    keys.sort(key=lambda k: -sum(group_counts[k].values()))  # stable: ties keep the seeded order

    current = {part: defaultdict(int) for part in fractions}
    assignment = {}
    for key in keys:
        counts = group_counts[key]

        def need(part: str) -> float:
            return sum(n * (fractions[part] * totals[label] - current[part][label]) / totals[label]
                       for label, n in counts.items())

        part = max(fractions, key=lambda p: (need(p), fractions[p]))
        assignment[key] = part
        for label, n in counts.items():
            current[part][label] += n
    return assignment


def _give_validation_both_classes(groups: dict[str, list[CropRef]], assignment: dict[str, str]) -> None:
    """Move the smallest training group that holds a class missing from validation into it.

    A one-class validation part chose the checkpoint and reported val AUC 0.0 in issue #11; it
    also cannot choose a threshold. A class is only moved while the training side keeps it in
    another group, so training never loses a class."""
    for label in (REAL, FAKE):
        if any(c.label == label for key, refs in groups.items() if assignment.get(key) == VAL for c in refs):
            continue
        if not any(assignment.get(key) == VAL for key in groups):
            return  # no validation part at all (val_size 0 or too few groups): nothing to balance
        holders = sorted((len({c.video_id for c in refs}), key) for key, refs in groups.items()
                         if assignment.get(key) == TRAIN and any(c.label == label for c in refs))
        for _, key in holders:
            remaining = {c.label for k, refs in groups.items() if assignment.get(k) == TRAIN and k != key
                         for c in refs}
            if remaining == {REAL, FAKE}:
                assignment[key] = VAL
                break


def split_crops(crops: list[CropRef], strategy: str, *, test_size: float = 0.2, val_size: float = 0.1,
                seed: int = 42) -> dict[int, str]:
    """crop id -> part. Raises InputError when the data cannot make a usable split."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown split {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not 0.0 < test_size < 1.0:
        raise InputError(f"--test-size must be between 0 and 1, got {test_size}")
    if not crops:
        raise InputError("no crops in the database: run `orchestrator ingest DATASET` first")
    labels = {c.label for c in crops}
    if labels != {REAL, FAKE}:
        only = LABEL_NAMES[labels.pop()]
        raise InputError(f"all {len(crops)} crops are {only}: training needs real and fake crops")

    if strategy == "frame":
        order = sorted(crops, key=lambda c: c.crop_id)
        random.Random(seed).shuffle(order)
        n_test = max(1, round(len(order) * test_size))
        n_val = round((len(order) - n_test) * val_size)
        parts = [TEST] * n_test + [VAL] * n_val + [TRAIN] * (len(order) - n_test - n_val)
        result = {c.crop_id: part for c, part in zip(order, parts)}
    else:
        groups: dict[str, list[CropRef]] = defaultdict(list)
        for crop in crops:
            groups[crop.group_key].append(crop)
        if strategy == "official":
            test_videos = {c.video_id for c in crops if c.official_test}
            if not test_videos:
                raise InputError(f"no video is marked by {TEST_LIST_NAME}: use --split video")
            train_side = defaultdict(list)
            for key, refs in groups.items():
                kept = [c for c in refs if c.video_id not in test_videos]
                if kept:
                    train_side[key] = kept
            assignment = _assign_groups(train_side, {TRAIN: 1.0 - val_size, VAL: val_size}, seed)
            _give_validation_both_classes(train_side, assignment)
            result = {c.crop_id: TEST if c.video_id in test_videos else assignment[c.group_key] for c in crops}
        else:
            fractions = {TEST: test_size, VAL: (1.0 - test_size) * val_size, TRAIN: (1.0 - test_size) * (1.0 - val_size)}
            assignment = _assign_groups(groups, fractions, seed)
            _give_validation_both_classes(groups, assignment)
            result = {c.crop_id: assignment[c.group_key] for c in crops}

    by_id = {c.crop_id: c for c in crops}
    for part in (TRAIN, TEST):
        part_labels = {by_id[i].label for i, p in result.items() if p == part}
        if part_labels != {REAL, FAKE}:
            missing = ", ".join(LABEL_NAMES[label] for label in sorted({REAL, FAKE} - part_labels))
            raise InputError(
                f"the {strategy} split leaves the {part} part without {missing} crops "
                f"({len({c.group_key for c in crops})} source groups): ingest more videos or change --test-size"
            )
    return result


def split_summary(crops: list[CropRef], assignment: dict[int, str], strategy: str) -> dict:
    """Sizes of each part, and the leakage check: videos and sources on both train and test."""
    videos = {part: set() for part in PARTS}
    sources = {part: set() for part in PARTS}
    crop_counts = dict.fromkeys(PARTS, 0)
    for crop in crops:
        part = assignment[crop.crop_id]
        videos[part].add(crop.video_id)
        sources[part].add(crop.group_key)
        crop_counts[part] += 1
    seen_in_training = videos[TRAIN] | videos[VAL]
    sources_in_training = sources[TRAIN] | sources[VAL]
    return {
        "strategy": strategy,
        **{f"{part}_videos": len(videos[part]) for part in PARTS},
        **{f"{part}_crops": crop_counts[part] for part in PARTS},
        "shared_videos": len(seen_in_training & videos[TEST]),
        "shared_sources": len(sources_in_training & sources[TEST]),
        "leaks": bool(seen_in_training & videos[TEST] or sources_in_training & sources[TEST]),
    }


def drop_training_fakes(crops: list[CropRef], assignment: dict[int, str]) -> tuple[list[CropRef], dict[int, str], int]:
    """``--fakes sbi``: the training side (train and validation) keeps its real videos only; the
    test part keeps its fakes, the test of a model that never saw one. Returns the crops and
    assignment left, and how many fake videos left the training side."""
    dropped = {c.video_id for c in crops if c.label == FAKE and assignment[c.crop_id] in (TRAIN, VAL)}
    kept = [c for c in crops if c.video_id not in dropped]
    return kept, {c.crop_id: assignment[c.crop_id] for c in kept}, len(dropped)


def fake_videos_by_part(crops: list[CropRef], assignment: dict[int, str]) -> dict[str, int]:
    """{"train_fake_videos", "val_fake_videos", "test_fake_videos"}: what the report shows."""
    videos = {part: set() for part in PARTS}
    for crop in crops:
        if crop.label == FAKE:
            videos[assignment[crop.crop_id]].add(crop.video_id)
    return {f"{part}_fake_videos": len(videos[part]) for part in PARTS}
