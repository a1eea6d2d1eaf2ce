"""A container whose frame rate is absurd (issue 19, item 10): the rate is measured from the frames'
timestamps when they tell one, and the video fails with a clear error when they do not."""

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from shared.sample_data import make_sample_dataset
from tests.support import pipeline_env, run_cli_json
from workers.ingest import IngestParams, extract_face_crops
from workers.video import VideoError, open_video

FPS = 10.0
MP4V_DELTA = 1024  # cv2.VideoWriter's mp4v: timescale 10240 at 10 fps


def rewrite_stts(path: Path, entries: list[tuple[int, int]]) -> None:
    """Replace the (sample count, sample delta) entries of the video's `stts` box, in the bytes.

    cv2.VideoWriter writes `mdat` before `moov`, so a box of another size moves no sample's offset;
    the sizes of the boxes that hold it are corrected."""
    data = path.read_bytes()
    at = data.index(b"stts")
    assert data.index(b"mdat") < data.index(b"moov") < at
    old_size = struct.unpack(">I", data[at - 4:at])[0]
    body = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", n, d) for n, d in entries)
    box = struct.pack(">I", 8 + len(body)) + b"stts" + body
    out = bytearray(data[:at - 4] + box + data[at - 4 + old_size:])
    for parent in (b"stbl", b"minf", b"mdia", b"trak", b"moov"):
        where = out.rindex(parent, 0, at)
        struct.pack_into(">I", out, where - 4, struct.unpack(">I", out[where - 4:where])[0] + len(box) - old_size)
    path.write_bytes(bytes(out))


def write_clip(path: Path, frames: int = 30) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 8 % 256, np.uint8))
    writer.release()
    return path


def hold_last_frame(path: Path, frames: int, seconds: int = 200) -> None:
    """The last frame lasts ``seconds``: the average rate (what OpenCV reports) falls under 1 fps,
    while every other frame is 0.1 s after the one before."""
    rewrite_stts(path, [(frames - 1, MP4V_DELTA), (1, MP4V_DELTA * 10 * seconds)])


def zero_deltas(path: Path, frames: int) -> None:
    """Every sample lasts 0: neither the container nor the timestamps tell a rate."""
    rewrite_stts(path, [(frames, 0)])


def test_an_absurd_container_rate_is_replaced_by_the_timestamps(tmp_path):
    path = write_clip(tmp_path / "held.mp4")
    hold_last_frame(path, 30)
    probe = cv2.VideoCapture(str(path))
    reported = probe.get(cv2.CAP_PROP_FPS)
    probe.release()
    assert reported < 1.0  # what OpenCV says of this file: the defect is real

    capture, info = open_video(path)
    capture.release()
    assert info.fps == pytest.approx(FPS, abs=0.01) and info.reported_fps == pytest.approx(reported)
    # Sampling follows the measured rate: one frame a second of a 3 s clip, not all 30.
    result = extract_face_crops(path, IngestParams(every=1.0, seek=False))
    assert result.frames_sampled == 3


def test_a_rate_nothing_tells_fails_the_video_with_a_clear_error(tmp_path):
    path = write_clip(tmp_path / "zero.mp4")
    zero_deltas(path, 30)
    with pytest.raises(VideoError, match=r"reports 0\.\d+ fps and the frame timestamps give no plausible rate"):
        open_video(path)


def test_a_sane_rate_is_taken_as_it_is(tmp_path):
    capture, info = open_video(write_clip(tmp_path / "fine.mp4"))
    capture.release()
    assert info.fps == FPS and info.reported_fps is None


@pytest.mark.integration
def test_ingest_through_real_workers_samples_by_the_measured_rate_and_fails_the_unreadable_one(tmp_path):
    root = tmp_path / "Celeb-DF"
    summary = make_sample_dataset(root, reals_per_folder=1, fakes=1, seconds=3.0)
    held, zero = summary["videos"]["Celeb-real"][0], summary["videos"]["YouTube-real"][0]
    hold_last_frame(root / held, 30)
    zero_deltas(root / zero, 30)
    data_dir = tmp_path / "data"
    result = run_cli_json(["ingest", str(root), "--workers", "1", "--every", "1"], pipeline_env(DATA_DIR=data_dir),
                          expect_code=1)
    failures = {f["video"]: f["error"] for f in result["status"]["failures"]}
    assert list(failures) == [zero] and "frame timestamps give no plausible rate" in failures[zero]
    engine = create_engine(f"sqlite:///{data_dir / 'pipeline.db'}")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT status, fps, frames_sampled FROM videos WHERE rel_path = :p"),
                           {"p": held}).one()
        last = conn.execute(text("SELECT max(c.timestamp_s) FROM crops c JOIN videos v ON v.id = c.video_id "
                                 "WHERE v.rel_path = :p"), {"p": held}).scalar()
    engine.dispose()
    assert row.status == "done" and row.fps == pytest.approx(FPS, abs=0.01) and row.frames_sampled == 3
    assert last <= 3.0  # timestamps of a 3 s clip, not of 30 frames at 0.15 fps
