"""Reading sampled frames from a video: one frame every N seconds, nothing else converted."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

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
    # The container's own frame rate when it was absurd and ``fps`` was measured from timestamps.
    reported_fps: float | None = None


@dataclass(frozen=True)
class SampledFrame:
    index: int
    timestamp_s: float
    image_bgr: np.ndarray


def sample_step(fps: float, every: float) -> float:
    """Frames between two samples ``every`` seconds apart (fractional, so rounding errors do not
    drift over long videos)."""
    if every <= 0:
        raise ValueError("the sampling interval must be positive")
    return max(fps * every, 1.0)


def sample_positions(fps: float, every: float) -> Iterator[int]:
    """Frame indices at t = 0, every, 2*every, ... (strictly increasing, endless)."""
    step = sample_step(fps, every)
    last = -1
    for k in itertools.count():
        index = int(round(k * step))
        if index > last:
            last = index
            yield index


def sampled_indices(frame_count: int, fps: float, every: float) -> list[int]:
    """The frames sampled in a video of frame_count frames."""
    return list(itertools.takewhile(lambda i: i < frame_count, sample_positions(fps, every)))


# FFmpeg threads per opened video; 0 lets FFmpeg start one per core. Worker processes set their own
# thread count here (workers/lifecycle.py): on 944x500 clips FFmpeg's extra threads saved a sampled
# video no time but burned ~13 % more CPU, which two worker processes on two cores took from each
# other (docs/benchmarks.md).
_decode_threads = 0


def set_decode_threads(threads: int) -> None:
    global _decode_threads
    _decode_threads = max(0, int(threads))


def open_video(path: Path | str) -> tuple[cv2.VideoCapture, VideoInfo]:
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
    if not path.is_file():
        raise VideoError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise VideoError("empty file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise VideoError(f"{path}: permission denied") from None
    capture = _open_capture(path)
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    info = VideoInfo(
        fps=fps,
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        reported_frames=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
    )
    if plausible_fps(fps):
        return capture, info
    capture.release()
    derived = fps_from_timestamps(path)
    if derived is None:
        shown = f"{fps:.3g} fps" if math.isfinite(fps) and fps > 0 else "no frame rate"
        raise VideoError(f"the container reports {shown} and the frame timestamps give no plausible rate "
                         f"({MIN_FPS:g}-{MAX_FPS:g} fps): re-encode it with a frame rate (ffmpeg -r)")
    capture = _open_capture(path)
    return capture, VideoInfo(fps=derived, width=info.width, height=info.height,
                              reported_frames=info.reported_frames, reported_fps=fps)


# Frame rates a video can really have. Outside them the container's metadata is wrong: an mp4 whose
# last sample lasts minutes reads as 0.34 fps, one whose `stts` deltas are 0 as 0.14 fps, and every
# frame would be sampled (docs/reliability.md).
MIN_FPS, MAX_FPS = 1.0, 1000.0
# Frames read to measure the rate from their timestamps when the metadata is absurd.
TIMESTAMP_PROBE_FRAMES = 50


def plausible_fps(fps: float) -> bool:
    return math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS


def fps_from_timestamps(path: Path | str, frames: int = TIMESTAMP_PROBE_FRAMES) -> float | None:
    """The frame rate the first frames' timestamps (CAP_PROP_POS_MSEC) show: the median step between
    them; None when there are too few or the rate they give is not plausible either."""
    capture = _open_capture(path)
    stamps = []
    try:
        while len(stamps) < frames and capture.grab():
            stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    finally:
        capture.release()
    steps = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
    if len(steps) < 2:
        return None
    fps = 1000.0 / float(np.median(steps))
    return round(fps, 3) if plausible_fps(fps) else None


def _open_capture(path: Path | str) -> cv2.VideoCapture:
    if _decode_threads:
        capture = cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, _decode_threads])
    else:
        capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError("cannot open as a video")
    return capture


# OpenCV's FFMPEG seek (CAP_PROP_POS_FRAMES) goes back to the keyframe before target - 16 and
# decodes forward from there (cap_ffmpeg_impl.hpp, CvCapture_FFMPEG::seek): 16 frames of slack.
SEEK_BACKOFF_FRAMES = 16
# A seek also flushes the decoder and re-reads the container index: counted as a few frames.
SEEK_OVERHEAD_FRAMES = 4


@dataclass(frozen=True)
class StreamIndex:
    """Where a video's keyframes are and how many frames it holds, read from its packets
    without decoding any (OpenCV's raw stream mode: ~2.5 ms for 390 frames of 944x500)."""

    keyframes: tuple[int, ...]
    frame_count: int


def index_stream(path: Path | str) -> StreamIndex | None:
    """The keyframe positions of a video's stream, or None where the backend cannot tell them
    (then the sampler walks, as it always could)."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened() or not capture.set(cv2.CAP_PROP_FORMAT, -1):
            return None
        keyframes, count = [], 0
        while capture.grab():
            if capture.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME):
                keyframes.append(count)
            count += 1
    finally:
        capture.release()
    if not keyframes or keyframes[0] != 0:
        return None  # a stream that does not start on a keyframe: seeking is not to be trusted
    return StreamIndex(keyframes=tuple(keyframes), frame_count=count)


def seek_start(keyframes: Sequence[int], target: int) -> int:
    """The frame OpenCV's seek to ``target`` starts decoding from."""
    return keyframes[bisect.bisect_right(keyframes, max(target - SEEK_BACKOFF_FRAMES, 0)) - 1]


class SeekMismatch(Exception):
    """A seek did not land on the frame asked for: the caller reads the video again by walking."""


class SampledFrames:
    """Iterate over the sampled frames of an open video, decoding as few frames as it can.

    Without a :class:`StreamIndex` it walks the whole stream with ``grab()`` and decodes
    (``retrieve()``) only the sampled frames; the container's frame count is not trusted: the walk
    ends where decoding ends, and ``frames_walked`` says how far that was.

    With one (``index``), it knows the frame count from the packets and where the keyframes are.
    For each sample it either walks forward from where it stands, or seeks
    (``CAP_PROP_POS_FRAMES``) when the seek starts decoding further ahead than it stands, so it
    decodes fewer frames: with sparse keyframes (H.264 at x264's defaults) it mostly walks, with
    dense ones (mp4v: one every 12 frames) it mostly seeks. It stops after the last sample;
    ``frames_walked`` is then the frame count of the index, ``frames_decoded`` what was decoded.
    A seek that lands elsewhere than asked raises :class:`SeekMismatch`.
    """

    def __init__(self, capture: cv2.VideoCapture, fps: float, every: float, index: StreamIndex | None = None):
        self.capture, self.fps, self.every, self.index = capture, fps, every, index
        self.frames_walked = 0
        self.frames_decoded = 0  # frames the decoder went through (grabbed, or decoded by a seek)
        self.seeks = 0

    def __iter__(self) -> Iterator[SampledFrame]:
        if self.index is not None:
            yield from self._seeking()
            return
        positions = sample_positions(self.fps, self.every)
        next_index = next(positions)
        while self.capture.grab():
            index = self.frames_walked
            self.frames_walked += 1
            self.frames_decoded += 1
            if index != next_index:
                continue
            ok, image = self.capture.retrieve()
            if ok and image is not None:
                yield SampledFrame(index=index, timestamp_s=index / self.fps, image_bgr=image)
            next_index = next(positions)

    def _seeking(self) -> Iterator[SampledFrame]:
        keyframes, count = self.index.keyframes, self.index.frame_count
        position = 0  # the frame the next grab() returns
        self.frames_walked = count
        for target in sampled_indices(count, self.fps, self.every):
            start = seek_start(keyframes, target)
            if start - position > SEEK_OVERHEAD_FRAMES:
                self.capture.set(cv2.CAP_PROP_POS_FRAMES, target)
                landed = int(self.capture.get(cv2.CAP_PROP_POS_FRAMES))
                if landed != target:
                    raise SeekMismatch(f"asked for frame {target}, the decoder stands at {landed}")
                self.seeks += 1
                self.frames_decoded += target - start
                position = target
            while position < target:
                if not self.capture.grab():
                    break
                position += 1
                self.frames_decoded += 1
            if position < target or not self.capture.grab():
                self.frames_walked = position  # the stream ends before its packets said: stop here
                break
            position += 1
            self.frames_decoded += 1
            ok, image = self.capture.retrieve()
            if ok and image is not None:
                yield SampledFrame(index=target, timestamp_s=target / self.fps, image_bgr=image)


# --- N frames evenly spaced over the whole video (``ingest --frames N``) ---------------------------

def even_indices(frame_count: int, frames: int) -> list[int]:
    """``frames`` frame indices evenly spaced from the first to the last frame, without repeats.

    DeepfakeBench's rule (``np.linspace(0, frame_count - 1, frames, dtype=int)``); a video with
    fewer frames than asked gives every frame once.
    """
    if frames < 1:
        raise ValueError("the number of frames must be at least 1")
    if frame_count <= 0:
        return []
    if frame_count <= frames:
        return list(range(frame_count))
    return sorted({int(i) for i in np.linspace(0, frame_count - 1, frames, dtype=np.int64)})


# Jumps longer than this many frames are made by seeking (CAP_PROP_POS_FRAMES), shorter ones by
# grab()-walking. OpenCV's seek decodes again from the keyframe before the target (and a little
# before that), so one seek costs up to a keyframe interval whatever the jump: x264's default
# interval is 250 frames, and on 13 s H.264 clips seeking was 2-10x slower than walking
# (bench/sampling_bench.py). Above this gap a seek is never worse than the walk it replaces, and
# on long videos decoding then costs about frames x keyframe interval, not the video's length.
SEEK_MIN_GAP = 300


class EvenFrames:
    """Iterate over ``frames`` frames evenly spaced over an open video; only those are converted.

    The frame count comes from the container (``reported_frames``) and is not trusted:

    - too high: decoding stops where the video really ends and the frames decoded so far are
      kept; ``frames_expected`` > ``frames_decoded`` says so;
    - 0 or unknown: the video is walked once with ``grab()`` to count its frames, rewound, and
      then sampled (``count_walked`` is True);
    - too low: frames past the reported end are never looked at (that cannot be known without
      walking every video to its end, which is what this sampler avoids).

    ``seek_min_gap``: a jump to the next sampled frame longer than this is a seek, a shorter one a
    ``grab()`` walk (None: ``SEEK_MIN_GAP``; 0: always seek; a huge value: always walk). Decoding
    then costs about ``frames`` times min(jump, keyframe interval), not the video's length.
    """

    def __init__(self, capture: cv2.VideoCapture, fps: float, frames: int, reported_frames: int,
                 *, seek_min_gap: int | None = None):
        self.capture, self.fps, self.frames = capture, fps, frames
        self.reported_frames = reported_frames
        self.seek_min_gap = SEEK_MIN_GAP if seek_min_gap is None else seek_min_gap
        self.count_walked = False
        self.frame_count = max(reported_frames, 0)  # the count the indices were planned on
        self.indices: list[int] = []
        self.frames_decoded = 0
        self.frames_walked = 0  # highest frame position reached (not every frame was decoded)
        self.ended_early = False  # the stream ended before the last planned frame

    @property
    def frames_expected(self) -> int:
        return len(self.indices)

    def _count_by_walking(self) -> int:
        count = 0
        while self.capture.grab():
            count += 1
        self.frames_walked = count
        if count and not (self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                          and self.capture.get(cv2.CAP_PROP_POS_FRAMES) == 0):
            raise VideoError("the frame count is unknown and the video cannot be rewound")
        return count

    def _seek(self, index: int, position: int) -> int | None:
        """Seek to ``index``; the position reached (walking goes on from there when the seek fell
        short, as past the real end of a video whose count is too high), None when unknown."""
        if self.capture.set(cv2.CAP_PROP_POS_FRAMES, index):
            reached = int(self.capture.get(cv2.CAP_PROP_POS_FRAMES))
            if reached == index:
                return index
            if position <= reached < index:
                return reached
            return None
        return position  # the stream cannot seek and has not moved: walk instead

    def __iter__(self) -> Iterator[SampledFrame]:
        if self.reported_frames <= 0:
            self.frame_count = self._count_by_walking()
            self.count_walked = True
        self.indices = even_indices(self.frame_count, self.frames)
        position = 0  # index of the frame the next grab() returns
        for index in self.indices:
            if index - position > self.seek_min_gap:
                position = self._seek(index, position)
                if position is None:
                    self.ended_early = True
                    break
            while position < index and self.capture.grab():
                position += 1
            if position < index or not self.capture.grab():
                self.ended_early = True
                self.frames_walked = max(self.frames_walked, min(position, index))
                break
            position = index + 1
            self.frames_walked = max(self.frames_walked, position)
            ok, image = self.capture.retrieve()
            if ok and image is not None:
                self.frames_decoded += 1
                yield SampledFrame(index=index, timestamp_s=index / self.fps, image_bgr=image)
