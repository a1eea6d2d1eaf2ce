"""Ingest end to end, through real worker processes: embedded default, then Redis + PostgreSQL."""

import cv2
import pytest
from sqlalchemy import create_engine, text

from tests.support import CeleryWorker, pipeline_env, run_cli, run_cli_json

pytestmark = pytest.mark.integration

EXPECTED_VIDEOS = 12  # the sample dataset (11) + a corrupt one; + a blank one replaces nothing
CORRUPT = "Celeb-real/id9_0000.mp4"
BLANK = "YouTube-real/00099.mp4"


def check_database_and_files(database_url, data_dir, detector, expect_videos):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT rel_path, status FROM videos")).all())
        crops = conn.execute(text(
            "SELECT v.rel_path, c.frame_index, c.face_index, c.crop_path, c.w, c.h FROM crops c "
            "JOIN videos v ON v.id = c.video_id")).all()
        dupes = conn.execute(text(
            "SELECT count(*) FROM (SELECT video_id, frame_index, face_index FROM crops "
            "GROUP BY video_id, frame_index, face_index HAVING count(*) > 1) d")).scalar()
    engine.dispose()
    assert len(statuses) == expect_videos
    assert statuses[CORRUPT] == "failed" and statuses[BLANK] == "no_face"
    assert all(s == "done" for p, s in statuses.items() if p not in (CORRUPT, BLANK))
    assert dupes == 0
    assert {c.rel_path for c in crops} == {p for p, s in statuses.items() if s == "done"}
    files = sorted((data_dir / "crops").rglob("*.png"))
    assert len(files) == len(crops)
    for crop in crops:
        image = cv2.imread(str(data_dir / crop.crop_path))
        assert image.shape == (128, 128, 3)
        # Each crop holds a face: the detector finds one again in the crop itself.
        rgb = cv2.cvtColor(cv2.resize(image, (256, 256)), cv2.COLOR_BGR2RGB)
        found = detector.detect_faces(rgb)
        assert found and max(f["confidence"] for f in found) > 0.9, crop.crop_path
    return statuses, crops


def test_embedded_default_runs_local_workers(sample_root, tmp_path, detector):
    data_dir = tmp_path / "data"
    env = pipeline_env(DATA_DIR=data_dir)
    result = run_cli_json(["ingest", str(sample_root), "--workers", "2"], env, expect_code=1)
    assert result["mode"] == "embedded" and result["enqueued"] == EXPECTED_VIDEOS
    status = result["status"]
    assert status["videos"]["by_status"] == {"pending": 0, "running": 0, "done": 10, "no_face": 1, "failed": 1}
    assert status["failures"][0]["video"] == CORRUPT
    # Real worker processes did the work (prefork children, not this process, not eager mode).
    log = (data_dir / "logs" / "worker-ingest.log").read_text()
    assert "ForkPoolWorker-1" in log and "ForkPoolWorker-2" in log
    _, crops = check_database_and_files(f"sqlite:///{data_dir / 'pipeline.db'}", data_dir, detector, EXPECTED_VIDEOS)

    again = run_cli_json(["ingest", str(sample_root)], env, expect_code=1)
    assert again["enqueued"] == 0 and again["new_videos"] == 0 and again["status"]["crops"] == len(crops)
    retried = run_cli_json(["ingest", str(sample_root), "--retry-failed"], env, expect_code=1)
    assert retried["enqueued"] == 1 and retried["status"]["crops"] == len(crops)

    export = run_cli(["export", "--format", "csv"], env)
    lines = export.stdout.strip().splitlines()
    assert lines[0] == ("video,label,official_test,status,frame_index,timestamp_s,face_index,x,y,w,h,confidence,"
                        "crop_path,left_eye_x,left_eye_y,right_eye_x,right_eye_y,nose_x,nose_y,mouth_left_x,"
                        "mouth_left_y,mouth_right_x,mouth_right_y,method")
    assert len(lines) == len(crops) + 1


def test_distributed_redis_postgres_and_a_celery_worker(sample_root, tmp_path, pg_url, redis_url, detector):
    data_dir = tmp_path / "data"
    env = pipeline_env(DATA_DIR=data_dir, DATABASE_URL=pg_url, CELERY_BROKER_URL=redis_url)
    upgrade = run_cli(["db", "upgrade"], env)
    assert upgrade.returncode == 0, upgrade.stderr

    queued = run_cli_json(["ingest", str(sample_root)], env)  # no worker yet: enqueue and return
    assert queued["mode"] == "distributed" and queued["enqueued"] == EXPECTED_VIDEOS
    assert queued["status"]["videos"]["by_status"]["pending"] == EXPECTED_VIDEOS

    with CeleryWorker(env, queues="cpu", concurrency=2, log_dir=tmp_path) as worker:
        waited = run_cli_json(["ingest", str(sample_root), "--wait"], env, expect_code=1)
        assert waited["enqueued"] == 0  # everything was already queued; --wait follows it
        assert waited["status"]["videos"]["by_status"]["done"] == 10
        assert "ingest.process_video" in worker.log()
    check_database_and_files(pg_url, data_dir, detector, EXPECTED_VIDEOS)

    status = run_cli_json(["status"], env)
    assert status["videos"]["by_label"] == {"real": 8, "fake": 4}
    jsonl = run_cli(["export", "--format", "jsonl"], env).stdout.strip().splitlines()
    assert len(jsonl) == status["crops"]
