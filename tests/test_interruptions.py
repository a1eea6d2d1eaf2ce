"""Interruptions and unexpected errors: nothing left running, no orphan process, one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from tests.support import REPO, pipeline_env, wait_until


def add_video(video_id: int = 1, path: str = "/x"):
    from db.models import Dataset, Video
    from db.session import session_scope

    with session_scope() as session:
        session.add(Dataset(id=1, root=path, name="sample"))
        session.flush()
        session.add(Video(id=video_id, dataset_id=1, rel_path="Celeb-real/id0_0000.mp4", folder="Celeb-real",
                          label=0, group_key="id0"))


def video_row(video_id: int = 1):
    from db.models import Video
    from db.session import session_scope

    with session_scope() as session:
        return session.execute(select(Video.status, Video.error, Video.attempts).where(Video.id == video_id)).one()


def test_an_unexpected_task_error_ends_the_video_failed_with_the_error(local_db, monkeypatch):
    """cv2 unable to allocate, a NaN turned into an int...: the video ends failed, not running."""
    import workers.ingest
    from workers.tasks import process_video_task

    add_video()

    def boom(*args, **kwargs):
        raise MemoryError("cannot allocate 3 TB")

    monkeypatch.setattr(workers.ingest, "extract_face_crops", boom)
    summary = process_video_task.run(video_id=1, video="Celeb-real/id0_0000.mp4", params={})
    assert summary["status"] == "failed"
    assert tuple(video_row()) == ("failed", "MemoryError: cannot allocate 3 TB", 1)


def test_a_still_image_renamed_mp4_fails_as_not_a_video(local_db, tmp_path):
    import cv2
    from skimage import data

    from workers.ingest import IngestParams, process_video

    (tmp_path / "Celeb-real").mkdir()
    png = tmp_path / "Celeb-real" / "id0_0000.png"
    cv2.imwrite(str(png), data.astronaut()[:, :, ::-1])
    png.rename(tmp_path / "Celeb-real" / "id0_0000.mp4")
    add_video(path=str(tmp_path))
    class NoFaces:  # the detector's answer does not matter here
        def detect(self, images, min_face_pixels):
            return []

    summary = process_video(1, IngestParams(), detector=NoFaces())
    assert summary["status"] == "failed" and "not a video" in summary["error"]


def worker_pids(orchestrator_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"ingest-{orchestrator_pid}@"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_terminated_or_killed_ingest_leaves_no_worker_behind(signum, tmp_path, sample_root, fault_report):
    """`timeout 120 orchestrator ingest` (SIGTERM) or a SIGKILL: the local workers go too."""
    env = pipeline_env(DATA_DIR=tmp_path / "data")
    orchestrator = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "ingest", str(sample_root),
                                     "--workers", "1"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
    try:
        workers = wait_until(lambda: worker_pids(orchestrator.pid), 120, 0.1, "the local worker")
        log = tmp_path / "data" / "logs" / "worker-ingest.log"
        wait_until(lambda: log.exists() and " ready." in log.read_text(errors="replace"), 120, 0.2, "worker ready")
        os.kill(orchestrator.pid, signum)
        sent = time.monotonic()
        _, err = orchestrator.communicate(timeout=60)
        wait_until(lambda: not worker_pids(orchestrator.pid), 60, 0.1, "the workers to go")
        gone_s = round(time.monotonic() - sent, 1)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
        for pid in worker_pids(orchestrator.pid):
            os.kill(pid, signal.SIGKILL)
    if signum == signal.SIGTERM:
        assert orchestrator.returncode == 143
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == "terminated: what was recorded is kept; run the command again to resume"
    else:
        assert orchestrator.returncode == -signal.SIGKILL
    fault_report.update(signal=signal.Signals(signum).name, worker_processes=len(workers), workers_gone_s=gone_s)


def test_a_video_decoded_short_of_its_announced_frames_gets_a_warning(local_db):
    from sqlalchemy import update

    from db.models import Video
    from db.session import session_scope
    from orchestrator.output import format_status
    from workers.planning.status import ingest_status

    add_video()
    with session_scope() as session:
        session.execute(update(Video).values(status="done", frames_expected=70, frames_decoded=25))
    status = ingest_status()
    assert status["warnings"] == [{"video": "Celeb-real/id0_0000.mp4",
                                   "warning": "decoded 25 of 70 frames (damaged?)"}]
    assert "warning: Celeb-real/id0_0000.mp4: decoded 25 of 70 frames (damaged?)" in format_status(status)
