"""The per-video work called directly (no broker, no worker) on a SQLite database."""

import cv2
import pytest
from sqlalchemy import func, select

from db.models import Crop, Video
from db.session import session_scope
from workers.crop_pack import PACK_NAME, read_pack
from workers.planning.ingest import register_videos
from workers.datasets.celebdf import read_celebdf
from workers.ingest import IngestParams, process_video

PARAMS = IngestParams()


@pytest.fixture
def registered(local_db, sample_root):
    plan = register_videos(read_celebdf(sample_root), PARAMS.as_dict(), retry_failed=False, embedded=True)
    return plan


def video_id(rel_path):
    with session_scope() as session:
        return session.scalar(select(Video.id).where(Video.rel_path == rel_path))


def crops_of(vid):
    with session_scope() as session:
        return session.scalars(select(Crop).where(Crop.video_id == vid).order_by(Crop.frame_index)).all()


def test_registration_records_labels_identities_and_test_marks(registered):
    assert registered.total_videos == registered.new_videos == len(registered.to_enqueue) == 12
    with session_scope() as session:
        fake = session.scalar(select(Video).where(Video.rel_path == "Celeb-synthesis/id0_id1_0000.mp4"))
        assert (fake.label, fake.source_identity, fake.target_identity) == (1, "id0", "id1")
        assert fake.source_video == "Celeb-real/id0_0000.mp4" and fake.group_key == "celeb:id0"
        assert session.scalar(select(func.count()).where(Video.official_test)) == 4


def test_a_video_becomes_recorded_crops_on_disk(registered, local_db, detector):
    vid = video_id("Celeb-real/id0_0000.mp4")
    summary = process_video(vid, PARAMS, detector=detector)
    assert summary["status"] == "done" and summary["crops"] >= 3
    crops = crops_of(vid)
    assert [c.frame_index for c in crops] == [0, 30, 60]  # 7 s at 10 fps, one frame every 3 s
    assert [c.timestamp_s for c in crops] == [0.0, 3.0, 6.0]
    for crop in crops:
        image = cv2.imread(str(local_db.data_dir / crop.crop_path))
        assert image.shape == (128, 128, 3)
        assert crop.confidence >= 0.95 and crop.w > 20 and crop.h > 20
    with session_scope() as session:
        video = session.get(Video, vid)
        assert (video.status, video.attempts, video.frames_sampled, video.frames_decoded) == ("done", 1, 3, 70)


def test_running_twice_leaves_one_set_of_crops_and_no_orphans(registered, local_db, detector):
    vid = video_id("Celeb-synthesis/id0_id1_0000.mp4")
    process_video(vid, PARAMS, detector=detector)
    first = [(c.frame_index, c.face_index, c.crop_path) for c in crops_of(vid)]
    folder = local_db.data_dir / first[0][2].rsplit("/", 1)[0]
    (folder / "f999999_00.png").write_bytes(b"left by a killed run")

    assert process_video(vid, PARAMS, detector=detector)["skipped"]  # a finished video is not redone
    process_video(vid, PARAMS, force=True, detector=detector)  # a second delivery of the same work
    second = [(c.frame_index, c.face_index, c.crop_path) for c in crops_of(vid)]
    assert second == first
    names = sorted(p.rsplit("/", 1)[1] for _, _, p in first)
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + [PACK_NAME])
    assert list(read_pack(folder / PACK_NAME)[0]) == names  # the pack holds exactly the crops kept


def test_a_corrupt_video_fails_alone_with_its_error(registered, detector):
    bad = video_id("Celeb-real/id9_0000.mp4")
    summary = process_video(bad, PARAMS, detector=detector)
    assert summary["status"] == "failed" and summary["error"]
    good = video_id("YouTube-real/00000.mp4")
    assert process_video(good, PARAMS, detector=detector)["status"] == "done"
    with session_scope() as session:
        video = session.get(Video, bad)
        assert video.status == "failed" and video.error and crops_of(bad) == []


def test_a_video_without_faces_is_no_face(registered, detector):
    vid = video_id("YouTube-real/00099.mp4")
    assert process_video(vid, PARAMS, detector=detector)["status"] == "no_face"
    assert crops_of(vid) == []


def test_margin_and_size_are_honoured(registered, local_db, detector):
    vid = video_id("Celeb-real/id1_0000.mp4")
    process_video(vid, IngestParams(margin=0.0, size=64), detector=detector)
    crop = crops_of(vid)[0]
    assert cv2.imread(str(local_db.data_dir / crop.crop_path)).shape == (64, 64, 3)


def test_reregistering_adds_nothing_and_keeps_outcomes(registered, sample_root, detector):
    vid = video_id("Celeb-real/id0_0001.mp4")
    process_video(vid, PARAMS, detector=detector)
    again = register_videos(read_celebdf(sample_root), PARAMS.as_dict(), retry_failed=False, embedded=True)
    assert again.new_videos == 0 and again.total_videos == 12
    assert vid not in {v for v, _ in again.to_enqueue}
    assert len(crops_of(vid)) == 3


def test_failed_videos_come_back_only_with_retry_failed(registered, sample_root, detector):
    bad = video_id("Celeb-real/id9_0000.mp4")
    process_video(bad, PARAMS, detector=detector)
    scan = read_celebdf(sample_root)
    plain = register_videos(scan, PARAMS.as_dict(), retry_failed=False, embedded=True)
    assert bad not in {v for v, _ in plain.to_enqueue}
    retry = register_videos(scan, PARAMS.as_dict(), retry_failed=True, embedded=True)
    assert bad in {v for v, _ in retry.to_enqueue} and retry.retried_failed == 1


def test_a_temporary_png_of_a_dead_writer_is_removed_at_once(registered, local_db, detector):
    """A process killed while writing a PNG leaves `.<stem>.<host>.<pid>.tmp.png`: the next run of
    the video removes it when that process is gone, and keeps a recent one it cannot check."""
    import socket
    import subprocess
    import sys

    vid = video_id("Celeb-real/id0_0000.mp4")
    process_video(vid, PARAMS, detector=detector)
    folder = local_db.data_dir / crops_of(vid)[0].crop_path.rsplit("/", 1)[0]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    left = folder / f".f000000_00.{socket.gethostname()}.{dead}.tmp.png"
    elsewhere = folder / ".f000000_00.another-host.1.tmp.png"
    left.write_bytes(b"half a png")
    elsewhere.write_bytes(b"maybe being written on another machine")

    process_video(vid, PARAMS, force=True, detector=detector)
    assert not left.exists() and elsewhere.exists()
    assert all(p.name == elsewhere.name or not p.name.startswith(".") for p in folder.iterdir())
