import pytest

from shared.errors import InputError
from workers.planning.split import CropRef, split_crops, split_summary
from shared.labels import FAKE, REAL


def dataset(identities=10, youtube=8, crops_per_video=3):
    """Per identity: 2 real videos and 3 fakes made from them; YouTube videos alone."""
    crops, video_id, crop_id = [], 0, 0

    def add(label, group, official=False):
        nonlocal video_id, crop_id
        video_id += 1
        for _ in range(crops_per_video):
            crop_id += 1
            crops.append(CropRef(crop_id, video_id, label, group, official))

    for i in range(identities):
        for _ in range(2):
            add(0, f"celeb:id{i}", official=i == 0)
        for _ in range(3):
            add(1, f"celeb:id{i}", official=i in (0, 1))
    for k in range(youtube):
        add(0, f"YouTube-real:{k:05d}", official=k == 0)
    return crops


def parts_of(crops, assignment, key):
    found = {}
    for crop in crops:
        found.setdefault(key(crop), set()).add(assignment[crop.crop_id])
    return found


def test_video_split_keeps_every_source_group_on_one_side():
    crops = dataset()
    assignment = split_crops(crops, "video", seed=1)
    for group, parts in parts_of(crops, assignment, lambda c: c.group_key).items():
        assert len(parts) == 1, group
    summary = split_summary(crops, assignment, "video")
    assert summary["shared_videos"] == 0 and summary["shared_sources"] == 0 and not summary["leaks"]
    assert summary["val_videos"] > 0 and summary["test_videos"] > 0


def test_video_split_is_stratified_near_the_requested_size():
    crops = dataset(identities=20, youtube=20)
    assignment = split_crops(crops, "video", test_size=0.2, seed=3)
    summary = split_summary(crops, assignment, "video")
    total = summary["train_videos"] + summary["val_videos"] + summary["test_videos"]
    assert 0.15 <= summary["test_videos"] / total <= 0.25
    for label in (0, 1):
        labelled = [c for c in crops if c.label == label]
        videos = {c.video_id for c in labelled}
        test = {c.video_id for c in labelled if assignment[c.crop_id] == "test"}
        assert 0.1 <= len(test) / len(videos) <= 0.3


def test_split_is_reproducible_from_the_seed():
    crops = dataset()
    assert split_crops(crops, "video", seed=7) == split_crops(crops, "video", seed=7)
    assert split_crops(crops, "video", seed=7) != split_crops(crops, "video", seed=8)


def test_official_split_uses_the_marked_videos_and_reports_the_shared_sources():
    crops = dataset()
    assignment = split_crops(crops, "official", seed=1)
    for crop in crops:
        assert (assignment[crop.crop_id] == "test") == crop.official_test
    summary = split_summary(crops, assignment, "official")
    assert summary["shared_videos"] == 0
    assert summary["shared_sources"] >= 1  # like Celeb-DF: test fakes whose source is in training


def test_frame_split_leaks_and_says_so():
    crops = dataset()
    summary = split_summary(crops, split_crops(crops, "frame", seed=1), "frame")
    assert summary["leaks"] and summary["shared_videos"] > 0


def test_no_crops_one_class_or_an_empty_side_are_input_errors():
    with pytest.raises(InputError, match="no crops"):
        split_crops([], "video")
    only_real = [c for c in dataset() if c.label == 0]
    with pytest.raises(InputError, match="real"):
        split_crops(only_real, "video")
    one_group = [c for c in dataset(identities=1, youtube=0)]
    with pytest.raises(InputError, match="leaves the"):
        split_crops(one_group, "video")
    with pytest.raises(InputError, match="unknown split"):
        split_crops(dataset(), "random")


def test_validation_holds_both_classes_when_the_training_side_can_spare_a_group():
    # One big mixed identity group and many single real videos: by size alone, validation
    # would get real videos only (issue #11: a one-class validation chose the checkpoint).
    crops = []
    crop_id = 0
    for identity in range(6):  # id groups: 2 real + 3 fake videos each
        for v in range(5):
            video_id = identity * 10 + v
            crops.append(CropRef(crop_id, video_id, FAKE if v >= 2 else REAL, f"id{identity}", False))
            crop_id += 1
    for k in range(30):  # YouTube-real: groups of one
        crops.append(CropRef(crop_id, 1000 + k, REAL, f"yt{k}", False))
        crop_id += 1

    for seed in range(10):
        assignment = split_crops(crops, "video", test_size=0.2, val_size=0.1, seed=seed)
        for part in ("train", "val", "test"):
            labels = {c.label for c in crops if assignment[c.crop_id] == part}
            assert labels == {REAL, FAKE}, (seed, part, labels)
