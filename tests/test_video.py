import cv2
import numpy as np
import pytest

from workers.ingest import IngestParams, extract_face_crops
from workers.video import SampledFrames, VideoError, open_video, sampled_indices


def test_one_frame_every_three_seconds_at_30_fps():
    assert sampled_indices(400, 30.0, 3.0) == [0, 90, 180, 270, 360]


def test_fractional_frame_rates_do_not_drift():
    frame_count = 30 * 60 * 30  # half an hour at 29.97 fps
    indices = sampled_indices(frame_count, 29.97, 3.0)
    step = 29.97 * 3.0
    assert indices == [round(k * step) for k in range(len(indices))]
    assert len(indices) == int((frame_count - 1) // step) + 1
    assert indices[-1] / 29.97 == pytest.approx(3.0 * (len(indices) - 1), abs=1 / 29.97)


def test_interval_shorter_than_a_frame_samples_every_frame_once():
    assert sampled_indices(5, 10.0, 0.01) == [0, 1, 2, 3, 4]


def test_sampling_starts_at_zero_and_stays_inside_the_video():
    assert sampled_indices(1, 25.0, 3.0) == [0]
    assert sampled_indices(0, 25.0, 3.0) == []


def test_non_positive_interval_is_rejected():
    with pytest.raises(ValueError):
        sampled_indices(100, 30.0, 0)


def write_numbered_video(path, frames: int, fps: float = 10.0):
    """Frame i is filled with grey level 2*i, so decoded frames tell their index."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 2 * i, np.uint8))
    writer.release()


def test_sampled_frames_are_the_right_ones(tmp_path):
    path = tmp_path / "numbered.avi"
    write_numbered_video(path, frames=95, fps=10.0)
    capture, info = open_video(path)
    frames = SampledFrames(capture, info.fps, every_s=3.0)
    got = list(frames)
    capture.release()
    assert [f.index for f in got] == sampled_indices(95, 10.0, 3.0) == [0, 30, 60, 90]
    assert [f.timestamp_s for f in got] == [0.0, 3.0, 6.0, 9.0]
    assert frames.frames_walked == 95
    for frame in got:
        assert abs(float(frame.image_bgr.mean()) - 2 * frame.index) < 3


def test_unreadable_files_raise_video_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    for path in (empty, junk, tmp_path / "missing.mp4"):
        with pytest.raises(VideoError):
            extract_face_crops(path, IngestParams(), detector=object())
