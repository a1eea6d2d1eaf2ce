"""Reading sampled frames from a video: one frame every N seconds, nothing else converted."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np


class VideoError(Exception):
    """The file cannot be opened or decoded as a video."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    reported_frames: int  # what the container claims; may be wrong


@dataclass(frozen=True)
class SampledFrame:
    index: int
    timestamp_s: float
    image_bgr: np.ndarray


def sample_step(fps: float, every_s: float) -> float:
    """Frames between two samples (fractional, so rounding errors do not drift over long videos)."""
    if every_s <= 0:
        raise ValueError("the sampling interval must be positive")
    return max(fps * every_s, 1.0)


def sample_positions(fps: float, every_s: float) -> Iterator[int]:
    """Frame indices at t = 0, every_s, 2*every_s, ... (strictly increasing, endless)."""
    step = sample_step(fps, every_s)
    last = -1
    for k in itertools.count():
        index = int(round(k * step))
        if index > last:
            last = index
            yield index


def sampled_indices(frame_count: int, fps: float, every_s: float) -> list[int]:
    """The frames sampled in a video of frame_count frames."""
    return list(itertools.takewhile(lambda i: i < frame_count, sample_positions(fps, every_s)))


def open_video(path: Path | str) -> tuple[cv2.VideoCapture, VideoInfo]:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise VideoError("empty file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError("cannot open as a video")
    fps = capture.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(
        fps=float(fps),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        reported_frames=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
    )
    if not math.isfinite(info.fps) or info.fps <= 0:
        capture.release()
        raise VideoError(f"the container reports no frame rate ({fps!r})")
    return capture, info


class SampledFrames:
    """Iterate over the sampled frames of an open video, walking the stream with ``grab()``
    and decoding (``retrieve()``) only the frames that are sampled.

    The container's frame count is not trusted: the walk ends where decoding ends, and
    ``frames_walked`` says how far that was.
    """

    def __init__(self, capture: cv2.VideoCapture, fps: float, every_s: float):
        self.capture, self.fps, self.every_s = capture, fps, every_s
        self.frames_walked = 0

    def __iter__(self) -> Iterator[SampledFrame]:
        positions = sample_positions(self.fps, self.every_s)
        next_index = next(positions)
        while self.capture.grab():
            index = self.frames_walked
            self.frames_walked += 1
            if index != next_index:
                continue
            ok, image = self.capture.retrieve()
            if ok and image is not None:
                yield SampledFrame(index=index, timestamp_s=index / self.fps, image_bgr=image)
            next_index = next(positions)
