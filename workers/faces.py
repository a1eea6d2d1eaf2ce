"""Finding faces in frames (MTCNN) and cutting them out as square crops."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from shared.labels import LANDMARK_POINTS


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: top-left corner, width, height."""

    x: int
    y: int
    w: int
    h: int


# MTCNN's five landmarks, in this order. "left" and "right" as seen in the image (left_eye has the
# smaller x in an upright face), not the person's own left and right.
LANDMARK_NAMES = LANDMARK_POINTS

Landmarks = tuple[tuple[float, float], ...]  # five (x, y) pairs in LANDMARK_NAMES order


@dataclass(frozen=True)
class Face:
    box: Box  # the detector's box in original frame pixels, clamped to the frame
    confidence: float
    # MTCNN's five keypoints in LANDMARK_NAMES order, (x, y) in original frame pixels, scaled back
    # like the box but not clamped (a keypoint of a face at the edge may lie just outside).
    landmarks: Landmarks | None = None


def keep_largest_face(faces: Sequence[Face]) -> list[Face]:
    """Only the face with the largest box (DeepfakeBench keeps one face per frame); [] stays [].
    Equal areas: the first one given wins (detect_faces lists the most confident first)."""
    if not faces:
        return []
    return [max(faces, key=lambda face: face.box.w * face.box.h)]  # max keeps the first of equals


_detector = None
_detector_pid: int | None = None
_detector_lock = threading.Lock()


def get_detector():
    """The MTCNN detector of this process (a :class:`workers.detector.FastMTCNN`), built on first use.

    Built lazily in the process that uses it: a detector built in a Celery worker's parent
    before the prefork fork makes every task in the children hang (field notes).
    """
    global _detector, _detector_pid
    with _detector_lock:
        if _detector is None or _detector_pid != os.getpid():
            from workers.detector import FastMTCNN

            _detector = FastMTCNN()
            _detector_pid = os.getpid()
        return _detector


def detection_scale(width: int, height: int, max_side: int) -> float:
    """Factor (<= 1) to shrink a frame so that its longer side is at most max_side."""
    longest = max(width, height)
    return 1.0 if longest <= max_side else max_side / longest


def clamp_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box | None:
    """Clip a box to the frame; None when nothing of it is left inside."""
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    if x1 <= x0 or y1 <= y0:
        return None
    return Box(x0, y0, x1 - x0, y1 - y0)


def square_crop_box(box: Box, margin: float, width: int, height: int) -> Box:
    """A square around the box's centre, its side the box's longer side enlarged by ``margin``
    (0.3 = 30 %), moved (not cut) to stay inside the frame, and shrunk only when the frame
    itself is smaller. The crop therefore keeps the face's proportions when resized."""
    side = max(box.w, box.h) * (1.0 + margin)
    side = int(round(min(side, width, height)))
    side = max(side, 1)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0 = int(round(cx - side / 2.0))
    y0 = int(round(cy - side / 2.0))
    x0 = min(max(x0, 0), width - side)
    y0 = min(max(y0, 0), height - side)
    return Box(x0, y0, side, side)


def crop_face(image: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """Cut the square around ``box`` out of ``image`` and resize it to size x size."""
    height, width = image.shape[:2]
    square = square_crop_box(box, margin, width, height)
    patch = image[square.y : square.y + square.h, square.x : square.x + square.w]
    interpolation = cv2.INTER_AREA if square.w > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def detect_faces(
    frames_bgr: Sequence[np.ndarray],
    *,
    min_confidence: float,
    max_side: int,
    min_face_fraction: float = 0.0,
    detector=None,
    compiled: bool = True,
) -> list[list[Face]]:
    """Faces per frame, most confident first, boxes and landmarks in the frames' own pixels.

    All frames must have the same size (frames of one video). They are shrunk so their
    longer side is at most ``max_side`` and detected in one batched call. Faces smaller than
    ``min_face_fraction`` of the frame's shorter side (never under MTCNN's 20 px of the shrunk
    frame) are not searched for: the smallest, costliest levels of the pyramid are skipped.

    ``compiled=False`` runs the ``mtcnn`` package's own eager ``detect_faces`` at its default
    minimum face size (the code before the compiled path, kept to measure against; it ignores
    ``min_face_fraction``, which the package's pyramid cannot honour above ~22 px).
    """
    if not frames_bgr:
        return []
    detector = detector or get_detector()
    height, width = frames_bgr[0].shape[:2]
    scale = detection_scale(width, height, max_side)
    small = []
    for frame in frames_bgr:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # MTCNN expects RGB; OpenCV decodes BGR
        if scale < 1.0:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        small.append(rgb)
    small_h, small_w = small[0].shape[:2]
    if compiled:
        from workers.detector import min_face_pixels

        rows = detector.detect(small, min_face_pixels(small_w, small_h, min_face_fraction))
    else:
        from workers.detector import eager_detect

        rows = eager_detect(getattr(detector, "mtcnn", detector), small)
    results: list[list[Face]] = [[] for _ in small]
    for row in rows:
        confidence = float(row[5])
        if confidence < min_confidence:
            continue
        # As the package's detect_faces reports a box: fitted into the (shrunk) frame, then
        # rounded to whole pixels as x, y, w, h; then scaled back and clamped to the frame.
        x1, x2 = (min(max(v, 0.0), small_w - 1) for v in (row[1], row[3]))
        y1, y2 = (min(max(v, 0.0), small_h - 1) for v in (row[2], row[4]))
        x, y, w, h = (float(v) / scale for v in np.round([x1, y1, x2 - x1, y2 - y1]))
        box = clamp_box(x, y, w, h, width, height)
        if box is None:
            continue
        landmarks = tuple((float(row[6 + k]) / scale, float(row[11 + k]) / scale) for k in range(5))
        results[int(row[0])].append(Face(box=box, confidence=confidence, landmarks=landmarks))
    for faces in results:
        faces.sort(key=lambda f: f.confidence, reverse=True)
    return results

