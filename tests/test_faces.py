import cv2
import numpy as np
import pytest

from workers.faces import Box, clamp_box, crop_face, detect_faces, detection_scale, square_crop_box


def test_boxes_past_the_frame_are_clamped():
    assert clamp_box(-10, -5, 50, 40, 100, 80) == Box(0, 0, 40, 35)
    assert clamp_box(90, 70, 30, 30, 100, 80) == Box(90, 70, 10, 10)


def test_a_box_entirely_outside_the_frame_is_dropped():
    assert clamp_box(120, 10, 30, 30, 100, 80) is None


def test_square_crop_is_centred_and_enlarged_by_the_margin():
    square = square_crop_box(Box(40, 30, 20, 30), margin=0.3, width=200, height=200)
    assert square.w == square.h == 39  # longer side 30 * 1.3
    assert square.x + square.w / 2 == pytest.approx(50, abs=1)
    assert square.y + square.h / 2 == pytest.approx(45, abs=1)


def test_zero_margin_reproduces_a_tight_square():
    assert square_crop_box(Box(10, 10, 40, 40), margin=0.0, width=100, height=100) == Box(10, 10, 40, 40)


def test_square_near_the_edge_moves_inside_instead_of_being_cut():
    square = square_crop_box(Box(0, 0, 40, 40), margin=0.5, width=300, height=200)
    assert square == Box(0, 0, 60, 60)
    square = square_crop_box(Box(270, 170, 30, 30), margin=0.5, width=300, height=200)
    assert (square.x + square.w, square.y + square.h) == (300, 200) and square.w == square.h == 45


def test_square_larger_than_the_frame_shrinks_to_fit():
    square = square_crop_box(Box(10, 5, 90, 45), margin=0.3, width=100, height=50)
    assert square.w == square.h == 50
    assert 0 <= square.x and square.x + square.w <= 100 and square.y == 0


def test_crop_face_has_the_requested_size_and_content():
    image = np.zeros((200, 300, 3), np.uint8)
    image[50:100, 100:150] = 255  # the "face"
    crop = crop_face(image, Box(100, 50, 50, 50), margin=0.0, size=128)
    assert crop.shape == (128, 128, 3)
    assert crop.mean() > 250


def test_detection_scale_only_shrinks():
    assert detection_scale(320, 240, 640) == 1.0
    assert detection_scale(1920, 1080, 640) == pytest.approx(1 / 3)


def test_detect_faces_reports_boxes_in_original_pixels(detector):
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512, face near (180-270, 60-170)
    big = cv2.resize(face, (1024, 1024))
    blank = np.zeros_like(big)
    small_result, big_result = (
        detect_faces([img], min_confidence=0.95, max_side=10_000, detector=detector)[0] for img in (face, big)
    )
    assert len(small_result) == 1 and len(big_result) == 1
    # Detected on a frame shrunk to 512 px, reported in the 1024 px frame's pixels.
    shrunk = detect_faces([big, blank], min_confidence=0.95, max_side=512, detector=detector)
    assert shrunk[1] == []
    (found,) = shrunk[0]
    ref = small_result[0].box
    assert abs(found.box.x - 2 * ref.x) <= 4 and abs(found.box.w - 2 * ref.w) <= 6
    assert found.confidence >= 0.95


def test_confidence_threshold_filters_faces(detector):
    from skimage import data

    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    assert detect_faces([face], min_confidence=1.01, max_side=640, detector=detector) == [[]]
