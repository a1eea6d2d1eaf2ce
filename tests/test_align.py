"""Aligned crops (workers/align.py), MTCNN's landmarks and the largest-face rule (workers/faces.py)."""

import math

import cv2
import numpy as np
import pytest

from workers.align import align_face, alignment_matrix, eye_angle, transform_points
from workers.faces import Box, Face, crop_face, detect_faces, keep_largest_face

# An upright face: eyes level at y=100, 40 px apart, centred on the box's centre (x=150).
LEVEL = ((130.0, 100.0), (170.0, 100.0), (150.0, 120.0), (135.0, 140.0), (165.0, 140.0))
BOX = Box(110, 70, 80, 100)


def rotate_points(points, centre, degrees):
    """Points turned clockwise on screen (y down) by ``degrees`` about ``centre``."""
    a = math.radians(degrees)
    cx, cy = centre
    return tuple((cx + (x - cx) * math.cos(a) - (y - cy) * math.sin(a),
                  cy + (x - cx) * math.sin(a) + (y - cy) * math.cos(a)) for x, y in points)


def test_eye_angle_sign_and_value():
    assert eye_angle(LEVEL) == pytest.approx(0.0)
    assert eye_angle(rotate_points(LEVEL, (150, 120), 25)) == pytest.approx(25.0)
    assert eye_angle(rotate_points(LEVEL, (150, 120), -40)) == pytest.approx(-40.0)


@pytest.mark.parametrize("degrees", [-40, -10, 0, 25, 60])
def test_the_transform_levels_the_eyes_and_keeps_the_unaligned_scale_and_centre(degrees):
    landmarks = rotate_points(LEVEL, (150, 120), degrees)
    matrix = alignment_matrix(BOX, landmarks, margin=0.3, size=128)
    eyes = transform_points(matrix, landmarks[:2])
    assert eyes[0, 1] == pytest.approx(eyes[1, 1], abs=1e-6)  # level
    assert eyes[0, 0] < eyes[1, 0]
    # Scale: the box's longer side x 1.3 becomes the crop's side, as in the unaligned crop.
    assert np.linalg.norm(eyes[1] - eyes[0]) == pytest.approx(40 * 128 / (100 * 1.3))
    centre = transform_points(matrix, [(BOX.x + BOX.w / 2, BOX.y + BOX.h / 2)])[0]
    assert centre == pytest.approx((64, 64))


def test_level_eyes_give_the_same_crop_as_the_unaligned_one():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 3)
    box = Box(150, 90, 90, 90)  # far from the edges, square: the crops cover the same pixels
    landmarks = ((175.0, 120.0), (215.0, 120.0), (195.0, 140.0), (180.0, 160.0), (210.0, 160.0))
    aligned = align_face(image, box, landmarks, margin=0.3, size=64).astype(np.int16)
    plain = crop_face(image, box, margin=0.3, size=64).astype(np.int16)
    assert aligned.shape == plain.shape == (64, 64, 3)
    assert np.abs(aligned - plain).mean() < 4


def test_without_landmarks_the_crop_is_not_rotated_and_outside_the_frame_is_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = align_face(image, Box(0, 0, 40, 40), None, margin=0.5, size=60)
    assert crop.shape == (60, 60, 3)
    assert crop[:5, :5].max() == 0 and crop[40:, 40:].min() == 200  # box centre (20, 20) is the middle


def test_shrinking_a_large_face_does_not_alias():
    stripes = np.zeros((1000, 1000), np.uint8)
    stripes[:, ::2] = 255  # the finest pattern: aliasing would show it as strong low-frequency bands
    crop = align_face(stripes, Box(300, 300, 400, 400), None, margin=0.3, size=64)
    assert abs(float(crop[8:-8, 8:-8].mean()) - 127.5) < 8 and float(crop[8:-8, 8:-8].std()) < 8


def face(x, y, w, h, confidence=0.99):
    return Face(Box(x, y, w, h), confidence)


def test_largest_face_keeps_one_face_per_frame():
    small, big, other_big = face(0, 0, 10, 10), face(50, 50, 30, 40, 0.96), face(0, 50, 40, 30, 0.95)
    assert keep_largest_face([small, big]) == [big]
    assert keep_largest_face([big, other_big]) == [big]  # equal areas: the first (most confident)
    assert keep_largest_face([small]) == [small]
    assert keep_largest_face([]) == []


def test_landmarks_are_reported_in_original_pixels(detector):
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    big = cv2.resize(image, (1024, 1024))
    (ref,) = detect_faces([image], min_confidence=0.95, max_side=10_000, detector=detector)[0]
    (shrunk,) = detect_faces([big], min_confidence=0.95, max_side=512, detector=detector)[0]
    assert ref.landmarks is not None and len(ref.landmarks) == 5
    left_eye, right_eye = ref.landmarks[:2]
    assert ref.box.x < left_eye[0] < right_eye[0] < ref.box.x + ref.box.w
    for (x, y), (bx, by) in zip(ref.landmarks, shrunk.landmarks):
        assert bx == pytest.approx(2 * x, abs=4) and by == pytest.approx(2 * y, abs=4)


def test_a_rotated_face_comes_out_with_level_eyes(detector):
    from skimage import data

    image = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    height, width = image.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 25, 1.0)  # 25 degrees counter-clockwise
    rotated = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REPLICATE)
    (found,) = detect_faces([rotated], min_confidence=0.9, max_side=10_000, detector=detector)[0]
    assert abs(eye_angle(found.landmarks) + 25) < 6  # the detector sees the turn

    crop = align_face(rotated, found.box, found.landmarks, margin=0.3, size=160)
    unaligned = crop_face(rotated, found.box, margin=0.3, size=160)
    (again,) = detect_faces([crop], min_confidence=0.9, max_side=10_000, detector=detector)[0]
    assert abs(eye_angle(again.landmarks)) < 3
    (before,) = detect_faces([unaligned], min_confidence=0.9, max_side=10_000, detector=detector)[0]
    assert abs(eye_angle(before.landmarks)) > 15
