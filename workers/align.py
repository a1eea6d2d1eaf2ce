"""Aligned face crops: each face rotated and scaled so that its eyes are level (a similarity
transform from MTCNN's landmarks, as face-forensics pipelines do), then cut with the same margin and
size as the unaligned square crop of workers/faces.py (``crop_face``).

Pure NumPy/OpenCV: no detector here. The crop is centred on the detector box's centre, its side is
the box's longer side enlarged by ``margin`` (0.3 = 30 %), resized to ``size`` x ``size``; with
level eyes it covers the same pixels as ``crop_face`` (except near the frame's edges, where the
aligned crop is padded with black instead of being moved inside the frame).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from workers.faces import Box, Landmarks

LEFT_EYE, RIGHT_EYE = 0, 1  # positions in workers.faces.LANDMARK_NAMES


def eye_angle(landmarks: Landmarks) -> float:
    """Angle of the line from the left eye to the right eye (as seen in the image), in degrees:
    0 when level, positive when the right eye is lower (the face turned clockwise)."""
    (lx, ly), (rx, ry) = landmarks[LEFT_EYE], landmarks[RIGHT_EYE]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def alignment_matrix(box: Box, landmarks: Landmarks | None, margin: float, size: int) -> np.ndarray:
    """The 2x3 similarity transform from frame pixels to the aligned size x size crop.

    It rotates about the box's centre by the eye angle (no rotation when ``landmarks`` is None),
    scales the box's longer side times (1 + margin) to ``size`` and puts the box's centre in the
    middle of the crop.
    """
    side = max(box.w, box.h) * (1.0 + margin)
    if side <= 0 or size < 1:
        raise ValueError("the box and the crop size must be positive")
    angle = eye_angle(landmarks) if landmarks is not None else 0.0
    centre = (box.x + box.w / 2.0, box.y + box.h / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, size / side)
    matrix[:, 2] += (size / 2.0 - centre[0], size / 2.0 - centre[1])
    return matrix


def transform_points(matrix: np.ndarray, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Points (N x 2) mapped by a 2x3 affine matrix."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, box: Box, landmarks: Landmarks | None, margin: float,
               size: int) -> np.ndarray:
    """The aligned size x size crop of one face (same channels and dtype as ``image``).
    Parts of the crop outside the frame are black."""
    matrix = alignment_matrix(box, landmarks, margin, size)
    side = max(box.w, box.h) * (1.0 + margin)
    scale = size / side
    if scale < 0.5:
        # Shrinking a lot: blur first (as INTER_AREA does for the unaligned crop) so that the
        # bilinear warp does not alias. Only the region the crop can reach is blurred.
        sigma = (1.0 / scale - 1.0) / 2.0
        reach = side * math.sqrt(0.5) + 3.0 * sigma + 2.0
        cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
        x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
        x1, y1 = min(image.shape[1], int(math.ceil(cx + reach))), min(image.shape[0], int(math.ceil(cy + reach)))
        image = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigma)
        matrix = matrix.copy()
        matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
