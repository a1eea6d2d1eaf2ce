"""Self-blended images: landmarks in the crop's pixels, the mask, the blend, the input pipeline."""

import cv2
import numpy as np
import pytest

from workers.align import align_face
from workers.faces import Box, crop_face
from workers.training.sbi import (
    OUTLINE_SCALE, can_blend, crop_landmarks, face_outline, hard_mask, pair_augmentation, self_blend,
    training_dataset, validation_arrays, write_examples,
)

SIDE = 128
# An upright face in a 128 px crop: eyes, nose, mouth corners.
LANDMARKS = np.array([[44, 52], [84, 52], [64, 72], [48, 92], [80, 92]], dtype=np.float32)


def _face(side=SIDE, seed=0):
    """A textured crop: smooth noise, so every transform changes pixels."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (side // 8, side // 8, 3)).astype(np.uint8)
    return cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC)


def _inside(polygon: np.ndarray, side: int, grow: float = 0.0) -> np.ndarray:
    """Pixels within ``grow`` pixels of the polygon's convex hull."""
    mask = np.zeros((side, side), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(polygon).astype(np.int32)), 1)
    if grow > 0:
        size = 2 * int(grow) + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return mask.astype(bool)


@pytest.mark.parametrize("align", [False, True])
def test_landmarks_land_where_the_crop_shows_them(align):
    # A frame with a dot at each landmark (a tilted face, so alignment rotates): the dots in the cut
    # crop sit where crop_landmarks says.
    frame = np.zeros((360, 480, 3), np.uint8)
    points = [(200.0, 150.0), (260.0, 162.0), (232.0, 190.0), (208.0, 222.0), (250.0, 232.0)]
    for k, (x, y) in enumerate(points):
        cv2.circle(frame, (int(x), int(y)), 3, (40 * (k + 2), 255, 255 - 40 * k), -1)
    box = Box(180, 120, 100, 130)
    crop = (align_face(frame, box, points, 0.3, 96) if align else crop_face(frame, box, 0.3, 96))
    found = crop_landmarks(box, points, margin=0.3, size=96, align=align, frame_width=480, frame_height=360)
    for k in range(5):
        colour = np.array((40 * (k + 2), 255, 255 - 40 * k))
        near = np.argwhere(np.abs(crop.astype(int) - colour).sum(axis=2) < 60)
        assert len(near), f"landmark {k} not visible in the crop"
        centre = near.mean(axis=0)[::-1]
        assert np.hypot(*(centre - found[k])) < 2.0
    assert crop_landmarks(box, None, margin=0.3, size=96, align=align, frame_width=480, frame_height=360) is None


def test_mask_stays_inside_the_face_outline_and_covers_the_landmarks():
    largest = face_outline(LANDMARKS, (OUTLINE_SCALE[1], OUTLINE_SCALE[1]))
    assert _inside(largest, SIDE)[LANDMARKS[:, 1].astype(int), LANDMARKS[:, 0].astype(int)].all()
    hard = hard_mask(LANDMARKS, SIDE, (OUTLINE_SCALE[1], OUTLINE_SCALE[1]))
    assert hard.any() and not (hard.astype(bool) & ~_inside(largest, SIDE)).any()
    image = _face()
    for seed in range(20):
        made = self_blend(image, LANDMARKS, seed)
        # Moved with the source (5 % zoom, 3 % shift), deformed and blurred: within a few pixels.
        assert not ((made.mask > 0.01) & ~_inside(largest, SIDE, grow=0.08 * SIDE)).any(), seed
        assert made.mask.max() <= 1.0 + 1e-6 and made.mask.min() >= 0.0
        # The eyes' midpoint and the nose are always blended.
        assert made.mask[60, 64] > 0 and made.mask[72, 64] > 0


def test_pseudo_fake_differs_from_its_real_only_inside_the_mask_and_is_reproducible():
    image = _face(seed=3)
    changed = 0
    for seed in range(12):
        made = self_blend(image, LANDMARKS, seed)
        assert made.real.shape == made.fake.shape == (SIDE, SIDE, 3)
        assert made.real.dtype == made.fake.dtype == np.uint8 and made.mask.shape == (SIDE, SIDE)
        differs = (made.real != made.fake).any(axis=2)
        assert not (differs & (made.mask <= 0)).any()
        changed += differs.sum() > 100
        again = self_blend(image, LANDMARKS, seed)
        assert np.array_equal(again.fake, made.fake) and np.array_equal(again.real, made.real)
    assert changed == 12
    assert not np.array_equal(self_blend(image, LANDMARKS, 1).fake, self_blend(image, LANDMARKS, 2).fake)
    # At 64 px (the CPU recipe) too.
    small = self_blend(_face(64), LANDMARKS / 2, 0)
    assert small.fake.shape == (64, 64, 3) and (small.mask > 0).any()


def test_training_transforms_change_both_images_of_a_pair_alike_and_leave_the_blend_as_it_was():
    image = _face(64, seed=5)
    changed = 0
    for seed in range(30):
        # One draw for the pair: two equal images stay equal.
        real, fake = pair_augmentation(image, image.copy(), np.random.default_rng(seed))
        assert real.dtype == np.uint8 and real.shape == image.shape and np.array_equal(real, fake)
        changed += not np.array_equal(real, image)
        plain = self_blend(image, LANDMARKS / 2, seed)
        trained = self_blend(image, LANDMARKS / 2, seed, augment=True)
        assert np.array_equal(plain.mask, trained.mask)  # drawn after the blend
        again = self_blend(image, LANDMARKS / 2, seed, augment=True)
        assert np.array_equal(again.fake, trained.fake) and np.array_equal(again.real, trained.real)
    # RGB shift or brightness/contrast (p = 0.3 each) or JPEG (p = 0.5): 1 - 0.7 * 0.7 * 0.5 = 0.755 expected.
    assert 15 <= changed <= 29


def test_training_pipeline_pairs_each_real_crop_with_its_pseudo_fake():
    images = np.stack([_face(64, seed) for seed in range(6)])
    landmarks = np.repeat((LANDMARKS / 2)[None], 6, axis=0)
    landmarks[5] = np.nan  # no landmarks: comes alone
    labels = np.array([0, 0, 0, 0, 1, 0])  # crop 4 is a real fake (--fakes both): alone
    assert can_blend(landmarks).tolist() == [True] * 5 + [False]
    data = training_dataset(images, labels, landmarks, batch_size=4, seed=7)
    assert data.pseudo_fakes == 4 and len(data.labels) == 10 and data.labels.sum() == 5
    assert int(data.dataset.cardinality()) == 3

    def one_epoch(dataset):
        batches = list(dataset)
        return (np.concatenate([b[0].numpy() for b in batches]), np.concatenate([b[1].numpy() for b in batches]))

    first_images, first_labels = one_epoch(data.dataset)
    assert first_images.shape == (10, 64, 64, 3) and first_images.dtype == np.uint8
    assert first_labels.sum() == 5
    second_images, _ = one_epoch(data.dataset)
    assert not np.array_equal(first_images, second_images)  # a new shuffle and new blends each epoch
    # Rebuilt from the same seed: the same epochs.
    again, again_labels = one_epoch(training_dataset(images, labels, landmarks, batch_size=4, seed=7).dataset)
    assert np.array_equal(again, first_images) and np.array_equal(again_labels, first_labels)


def test_validation_holds_reals_their_pseudo_fakes_and_real_fakes_only_when_asked(tmp_path):
    images = np.stack([_face(64, seed) for seed in range(4)])
    landmarks = np.repeat((LANDMARKS / 2)[None], 4, axis=0)
    labels = np.array([0, 0, 1, 1])
    out, out_labels, source = validation_arrays(images, labels, landmarks, seed=1, keep_fakes=False)
    assert out_labels.tolist() == [0, 0, 1, 1] and source.tolist() == [0, 1, 0, 1]
    same, _, _ = validation_arrays(images, labels, landmarks, seed=1, keep_fakes=False)
    assert np.array_equal(same, out)
    _, both_labels, both_source = validation_arrays(images, labels, landmarks, seed=1, keep_fakes=True)
    assert both_labels.tolist() == [0, 0, 1, 1, 1, 1] and both_source.tolist() == [0, 1, 2, 3, 0, 1]
    sheet = write_examples(images, labels, landmarks, tmp_path / "sheet.png", seed=0)
    assert sheet.is_file() and cv2.imread(str(sheet)).shape[1] > 400


def test_sbi_split_keeps_fakes_out_of_training_and_in_the_test_part():
    from workers.planning.split import (CropRef, drop_training_fakes, fake_videos_by_part, split_crops,
                                        split_summary)

    crops = []
    for identity in range(10):
        for video, label in ((identity * 2, 0), (identity * 2 + 1, 1)):  # a real video and a fake made from it
            crops += [CropRef(video * 10 + k, video, label, f"id{identity}", False) for k in range(3)]
    assignment = split_crops(crops, "video", test_size=0.3, val_size=0.2, seed=1)
    kept, kept_assignment, dropped = drop_training_fakes(crops, assignment)
    counts = fake_videos_by_part(kept, kept_assignment)
    assert counts["train_fake_videos"] == counts["val_fake_videos"] == 0
    assert counts["test_fake_videos"] == fake_videos_by_part(crops, assignment)["test_fake_videos"] > 0
    assert dropped == 10 - counts["test_fake_videos"]
    summary = split_summary(kept, kept_assignment, "video")
    assert summary["shared_videos"] == summary["shared_sources"] == 0 and summary["train_videos"] > 0
    # Every real crop stays where the split put it.
    assert all(kept_assignment[c.crop_id] == assignment[c.crop_id] for c in kept if c.label == 0)
    assert len([c for c in kept if c.label == 0]) == len([c for c in crops if c.label == 0])
