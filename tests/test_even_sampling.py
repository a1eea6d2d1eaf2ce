"""N frames evenly spaced over the whole video (``ingest --frames N``): indices, decoding, wrong counts."""

import cv2
import numpy as np
import pytest

from workers.video import EvenFrames, even_indices, open_video

WALK_ONLY = 10**9


def test_indices_follow_deepfakebench_linspace_without_repeats():
    assert even_indices(100, 8) == [int(i) for i in np.linspace(0, 99, 8, dtype=int)]
    assert even_indices(390, 32)[0] == 0 and even_indices(390, 32)[-1] == 389
    assert len(even_indices(390, 32)) == 32
    for count in range(1, 80):
        indices = even_indices(count, 32)
        assert indices == sorted(set(indices)) and len(indices) == min(count, 32)


def test_short_video_gives_every_frame_and_empty_gives_none():
    assert even_indices(5, 8) == [0, 1, 2, 3, 4]
    assert even_indices(1, 8) == [0]
    assert even_indices(0, 8) == []
    with pytest.raises(ValueError):
        even_indices(10, 0)


def write_numbered(path, frames: int, fourcc: str = "MJPG", fps: float = 10.0):
    """Frame i is filled with grey level 4*i (frames <= 60), so decoded frames tell their index."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 4 * i, np.uint8))
    writer.release()
    return path


def decode(path, frames: int, reported: int | None = None, seek_min_gap: int | None = None):
    capture, info = open_video(path)
    try:
        sampler = EvenFrames(capture, info.fps, frames,
                             info.reported_frames if reported is None else reported, seek_min_gap=seek_min_gap)
        return sampler, list(sampler)
    finally:
        capture.release()


@pytest.mark.parametrize("seek_min_gap", [0, 3, WALK_ONLY])
def test_the_right_frames_are_decoded_by_seeking_or_walking(tmp_path, seek_min_gap):
    path = write_numbered(tmp_path / "numbered.avi", 60)
    sampler, got = decode(path, 8, seek_min_gap=seek_min_gap)
    assert [f.index for f in got] == even_indices(60, 8) == [0, 8, 16, 25, 33, 42, 50, 59]
    for frame in got:
        assert abs(float(frame.image_bgr.mean()) - 4 * frame.index) < 2, frame.index
        assert frame.timestamp_s == pytest.approx(frame.index / 10.0)
    assert sampler.frames_expected == sampler.frames_decoded == 8
    assert not sampler.ended_early and not sampler.count_walked and sampler.frames_walked == 60


def test_seeking_gives_the_same_pixels_as_walking_in_an_inter_coded_video(tmp_path):
    path = write_numbered(tmp_path / "numbered.mp4", 60, fourcc="mp4v")  # keyframe every 12 frames
    _, walked = decode(path, 7, seek_min_gap=WALK_ONLY)
    _, sought = decode(path, 7, seek_min_gap=0)
    assert [f.index for f in walked] == [f.index for f in sought] == even_indices(60, 7)
    for a, b in zip(walked, sought):
        assert np.array_equal(a.image_bgr, b.image_bgr), a.index


def test_a_video_shorter_than_n_gives_every_frame(tmp_path):
    path = write_numbered(tmp_path / "short.avi", 5)
    sampler, got = decode(path, 8)
    assert [f.index for f in got] == [0, 1, 2, 3, 4]
    assert sampler.frames_expected == sampler.frames_decoded == 5


@pytest.mark.parametrize("seek_min_gap", [0, WALK_ONLY])
def test_a_reported_count_too_high_stops_at_the_real_end_and_keeps_what_was_decoded(tmp_path, seek_min_gap):
    path = write_numbered(tmp_path / "numbered.avi", 60)
    sampler, got = decode(path, 8, reported=200, seek_min_gap=seek_min_gap)
    planned = even_indices(200, 8)
    assert [f.index for f in got] == [i for i in planned if i < 60]
    assert sampler.frames_expected == 8 and sampler.frames_decoded == len(got) < 8
    assert sampler.ended_early
    for frame in got:
        assert abs(float(frame.image_bgr.mean()) - 4 * frame.index) < 2


@pytest.mark.parametrize("reported", [0, -1])
def test_an_unknown_count_is_found_by_walking_once(tmp_path, reported):
    path = write_numbered(tmp_path / "numbered.mp4", 60, fourcc="mp4v")
    sampler, got = decode(path, 8, reported=reported, seek_min_gap=0)
    assert sampler.count_walked and sampler.frame_count == 60
    assert [f.index for f in got] == even_indices(60, 8)
    assert sampler.frames_expected == sampler.frames_decoded == 8
    _, walked = decode(path, 8, seek_min_gap=WALK_ONLY)
    for a, b in zip(walked, got):
        assert np.array_equal(a.image_bgr, b.image_bgr), a.index


class NoSeekCapture:
    """A capture over a real one that refuses to seek, as some streams do."""

    def __init__(self, capture):
        self.capture = capture

    def grab(self):
        return self.capture.grab()

    def retrieve(self):
        return self.capture.retrieve()

    def get(self, prop):
        return self.capture.get(prop)

    def set(self, prop, value):
        return False


def test_a_stream_that_cannot_seek_is_walked_instead(tmp_path):
    path = write_numbered(tmp_path / "numbered.avi", 60)
    capture, info = open_video(path)
    try:
        sampler = EvenFrames(NoSeekCapture(capture), info.fps, 4, info.reported_frames, seek_min_gap=0)
        got = list(sampler)
    finally:
        capture.release()
    assert [f.index for f in got] == even_indices(60, 4) and not sampler.ended_early
    for frame in got:
        assert abs(float(frame.image_bgr.mean()) - 4 * frame.index) < 2
