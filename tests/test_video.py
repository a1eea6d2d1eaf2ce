import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from workers.ingest import IngestParams, extract_face_crops
from workers.video import (SampledFrames, SeekMismatch, StreamIndex, VideoError, index_stream, open_video,
                           sampled_indices, seek_start, set_decode_threads)


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
    frames = SampledFrames(capture, info.fps, every=3.0)
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


BITS = 8


def coded_frame(i: int, width: int = 160, height: int = 96) -> np.ndarray:
    """Frame i shows i in binary as black/white squares (survives lossy codecs) and a moving line
    (so the encoder makes predicted frames, not only keyframes)."""
    image = np.tile(np.linspace(40, 200, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    image[:, (3 * i) % width] = 255
    for bit in range(BITS):
        image[8:40, 8 + 18 * bit:24 + 18 * bit] = 255 if (i >> bit) & 1 else 0
    return image


def frame_number(image: np.ndarray) -> int:
    return sum(1 << bit for bit in range(BITS) if image[16:32, 12 + 18 * bit:20 + 18 * bit].mean() > 128)


def write_coded_video(path, frames: int, fps: float = 10.0, fourcc: str = "mp4v"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (160, 96))
    for i in range(frames):
        writer.write(coded_frame(i))
    writer.release()


def sample(path, every, index):
    capture, info = open_video(path)
    frames = SampledFrames(capture, info.fps, every, index)
    got = list(frames)
    capture.release()
    return frames, got


def test_the_stream_index_finds_the_keyframes_without_decoding(tmp_path):
    path = tmp_path / "coded.mp4"
    write_coded_video(path, 200)
    index = index_stream(path)
    assert index.frame_count == 200
    assert index.keyframes[:4] == (0, 12, 24, 36)  # OpenCV's mp4v writer: one keyframe every 12 frames


def test_seeking_returns_the_same_frames_as_walking_and_decodes_fewer(tmp_path):
    path = tmp_path / "coded.mp4"
    write_coded_video(path, 200)
    index = index_stream(path)
    for every in (3.0, 1.3, 0.5, 0.1):
        walked, by_walk = sample(path, every, None)
        sought, by_seek = sample(path, every, index)
        assert [f.index for f in by_seek] == [f.index for f in by_walk] == sampled_indices(200, 10.0, every)
        assert all(frame_number(f.image_bgr) == f.index for f in by_seek + by_walk)
        assert sought.frames_walked == walked.frames_walked == 200
        assert sought.frames_decoded <= walked.frames_decoded
    sought, _ = sample(path, 3.0, index)
    assert sought.seeks >= 4 and sought.frames_decoded < 150  # against 200 walked


def test_seek_start_follows_opencvs_backoff():
    keyframes = (0, 12, 24, 36, 250)
    assert seek_start(keyframes, 30) == 12  # OpenCV seeks to the keyframe before target - 16
    assert seek_start(keyframes, 5) == 0
    assert seek_start(keyframes, 270) == 250


class _LyingCapture:
    """A capture whose seeks land one frame off."""

    def __init__(self, capture):
        self.capture = capture

    def set(self, prop, value):
        return self.capture.set(prop, value + 1 if prop == cv2.CAP_PROP_POS_FRAMES else value)

    def __getattr__(self, name):
        return getattr(self.capture, name)


def test_a_seek_that_lands_elsewhere_is_detected_and_the_video_is_walked_instead(tmp_path, monkeypatch):
    path = tmp_path / "coded.mp4"
    write_coded_video(path, 200)
    capture, info = open_video(path)
    with pytest.raises(SeekMismatch):
        list(SampledFrames(_LyingCapture(capture), info.fps, 3.0, index_stream(path)))
    capture.release()

    import workers.ingest as ingest

    real_open = ingest.open_video
    monkeypatch.setattr(ingest, "open_video", lambda p: (lambda c, i: (_LyingCapture(c), i))(*real_open(p)))
    seen = []
    monkeypatch.setattr(ingest, "detect_faces", lambda frames, **_: seen.extend(frames) or [[] for _ in frames])
    result = extract_face_crops(path, IngestParams(), detector=object())
    assert [frame_number(f) for f in seen[-7:]] == [0, 30, 60, 90, 120, 150, 180]
    assert result.frames_sampled == 7 and result.frames_walked == 200


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg to make an H.264 file")
def test_seeking_in_h264_with_b_frames(tmp_path):
    source = tmp_path / "coded.mp4"
    write_coded_video(source, 200)
    for extra in ([], ["-g", "20"]):  # x264's defaults (sparse keyframes), and dense ones
        path = tmp_path / f"h264{len(extra)}.mp4"
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(source), "-c:v", "libx264", *extra,
                        "-pix_fmt", "yuv420p", str(path)], check=True)
        index = index_stream(path)
        assert index.frame_count == 200
        for every in (3.0, 0.7):
            sought, frames = sample(path, every, index)
            assert [f.index for f in frames] == sampled_indices(200, 10.0, every)
            assert all(frame_number(f.image_bgr) == f.index for f in frames)


def test_a_stream_shorter_than_its_index_stops_or_falls_back_to_walking(tmp_path):
    path = tmp_path / "coded.mp4"
    write_coded_video(path, 200)
    # Packets claimed beyond the end: a walk towards a sample there stops where decoding ends...
    frames, got = sample(path, 3.0, StreamIndex(keyframes=(0,), frame_count=260))
    assert [f.index for f in got] == [0, 30, 60, 90, 120, 150, 180]
    assert frames.frames_walked == 200
    # ...and a seek there does not land where asked: the caller then walks the video.
    with pytest.raises(SeekMismatch):
        sample(path, 3.0, StreamIndex(keyframes=tuple(range(0, 260, 12)), frame_count=260))


def threads_while_decoding(path) -> tuple[int, list[int]]:
    capture, info = open_video(path)
    try:
        frames = list(SampledFrames(capture, info.fps, every=0.5))
        return len(os.listdir("/proc/self/task")), [frame_number(f.image_bgr) for f in frames]
    finally:
        capture.release()


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not os.path.isdir("/proc/self/task"), reason="needs 2 cores, Linux")
def test_a_worker_thread_count_limits_ffmpegs_decoder_and_bad_files_still_fail(tmp_path):
    path = tmp_path / "coded.mp4"
    write_coded_video(path, frames=60)
    png = tmp_path / "still.mp4"
    cv2.imwrite(str(tmp_path / "still.png"), coded_frame(0))
    (tmp_path / "still.png").rename(png)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    default_threads, default_frames = threads_while_decoding(path)
    still_default = threads_while_decoding(png)[1]
    set_decode_threads(1)
    try:
        one_thread, frames = threads_while_decoding(path)
        assert frames == default_frames == list(range(0, 60, 5))
        assert one_thread < default_threads  # FFmpeg started no decoding threads of its own
        assert threads_while_decoding(png)[1] == still_default == [0]  # opened as before: one still
        for bad in (junk, tmp_path / "missing.mp4"):
            with pytest.raises(VideoError):
                extract_face_crops(bad, IngestParams(), detector=object())
    finally:
        set_decode_threads(0)
