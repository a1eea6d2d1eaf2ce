"""A video replaced under the same name (issue 19, item 2): a later ingest notices, does it again,
replaces its crops and files, says how many changed, and a run that used the old crops says so."""

import json
import os
import shutil

import pytest
from sqlalchemy import create_engine, text

from shared.sample_data import make_sample_dataset
from tests.support import pipeline_env, run_cli, run_cli_json
from workers.crop_pack import PACK_NAME, read_pack
from workers.fingerprint import EDGE_BYTES, file_stamp, fingerprint, stamp_differs

REPLACED = "Celeb-real/id0_0000.mp4"


def test_a_stamp_tells_another_file_and_forgives_a_touch(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(os.urandom(3 * EDGE_BYTES))
    stamp = file_stamp(path)
    assert stamp_differs(stamp, path) is False
    os.utime(path, ns=(stamp["mtime_ns"] + 10**9, stamp["mtime_ns"] + 10**9))
    assert stamp_differs(stamp, path) is False  # the same bytes, touched: read, found equal
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one byte near the end, same size
    path.write_bytes(bytes(data))
    assert stamp_differs(stamp, path) is True and fingerprint(path) != stamp["fingerprint"]
    path.write_bytes(b"short")
    assert stamp_differs(stamp, path) is True
    assert stamp_differs({"size_bytes": None}, path) is None and stamp_differs(stamp, tmp_path / "gone") is None


def crops_of(conn, rel_path):
    return conn.execute(text("SELECT c.id, c.crop_path, c.x, c.y, c.w, c.h FROM crops c JOIN videos v "
                             "ON v.id = c.video_id WHERE v.rel_path = :p ORDER BY c.id"), {"p": rel_path}).all()


def record_a_run_on_every_crop(database_url):
    """A run whose split holds every crop, as `plan_run` records one (the run itself is not trained:
    what matters is what its split names)."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO runs (id, status, config, split, attempts, created_at) VALUES "
                          "('r1', 'done', :config, :split, 0, '2026-12-07')"),
                     {"config": json.dumps({"backbone": "tiny", "split": "video", "epochs": 1}),
                      "split": json.dumps({"strategy": "video", "train_crops": 1})})
        conn.execute(text("INSERT INTO split_members (run_id, crop_id, part) SELECT 'r1', id, 'train' FROM crops"))
    engine.dispose()


@pytest.mark.integration
@pytest.mark.slow  # ingest, train, replace a video, ingest again: ~1-1.5 min
def test_a_replaced_video_is_done_again_and_the_run_that_used_it_says_so(tmp_path):
    root, other = tmp_path / "Celeb-DF", tmp_path / "other"
    make_sample_dataset(root, reals_per_folder=1, fakes=1, seconds=3.0)
    make_sample_dataset(other, reals_per_folder=1, fakes=1, seconds=3.0, size=(640, 360), seed=1)
    data_dir = tmp_path / "data"
    env = pipeline_env(DATA_DIR=data_dir)
    url = f"sqlite:///{data_dir / 'pipeline.db'}"
    args = ["ingest", str(root), "--workers", "1", "--every", "1"]

    first = run_cli_json(args, env)
    assert first["changed_videos"] == 0 and first["status"]["videos"]["by_status"]["done"] == 3
    engine = create_engine(url)
    with engine.connect() as conn:
        old = crops_of(conn, REPLACED)
        total_before = conn.execute(text("SELECT count(*) FROM crops")).scalar()
    assert old
    record_a_run_on_every_crop(url)

    shutil.copyfile(other / REPLACED, root / REPLACED)  # another video, a larger one, under the same name
    again = run_cli(args, env)  # text, as people read it
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 changed on disk (done again), 1 processed now" in again.stdout

    with engine.connect() as conn:
        video = conn.execute(text("SELECT status, width, height, size_bytes, fingerprint FROM videos "
                                  "WHERE rel_path = :p"), {"p": REPLACED}).one()
        new = crops_of(conn, REPLACED)
        members = conn.execute(text("SELECT count(*) FROM split_members WHERE run_id = 'r1'")).scalar()
    assert (video.status, video.width, video.height) == ("done", 640, 360)
    assert video.size_bytes == (root / REPLACED).stat().st_size and video.fingerprint == fingerprint(root / REPLACED)
    assert new and not {c.id for c in new} & {c.id for c in old}  # the old rows are gone, not kept as valid
    assert {(c.x, c.y, c.w, c.h) for c in new}.isdisjoint({(c.x, c.y, c.w, c.h) for c in old})  # the new video's boxes
    # Its folder holds exactly the new crops and a pack of them: no file of the old video is left.
    folder = data_dir / os.path.dirname(new[0].crop_path)
    names = {os.path.basename(c.crop_path) for c in new}
    assert {p.name for p in folder.iterdir()} == names | {PACK_NAME}
    assert set(read_pack(folder / PACK_NAME)[0]) == names
    # The run keeps its other crops and records what it lost.
    assert members == total_before - len(old)

    report = run_cli_json(["report", "r1"], env)
    changed = report["data_changed"]
    assert (changed["videos"], changed["crops"], changed["examples"]) == (1, len(old), [REPLACED])
    report_text = run_cli(["report", "r1"], env).stdout
    assert f"DATA CHANGED since this run was planned: 1 videos done again ({REPLACED})" in report_text

    # The same bytes touched are not a change; nothing is done again.
    fake = next((root / "Celeb-synthesis").iterdir())
    os.utime(fake)
    third = run_cli_json(args, env)
    assert third["changed_videos"] == 0 and third["enqueued"] == 0
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path, monkeypatch):
    """In-process settings on a fresh SQLite file or PostgreSQL database, schema at the head."""
    from db.migrate import upgrade_schema
    from db.session import reset_engine
    from shared.settings import reset_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    if request.param == "postgresql":
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    reset_settings()
    reset_engine()
    upgrade_schema()
    yield request.param
    reset_engine()
    reset_settings()


def test_the_planner_and_the_record_on_both_databases(database, tmp_path):
    """The plain functions the command and the worker call: a same-size replacement is found by its
    fingerprint, a touch is not a change, and the run is told under the row lock of each database."""
    from sqlalchemy import func, select

    from db.models import Crop, Run, SplitMember, Video
    from db.session import session_scope
    from workers.ingest import _record
    from workers.planning.ingest import register_videos
    from workers.datasets.celebdf import read_celebdf

    root = tmp_path / "Celeb-DF"
    (root / "Celeb-real").mkdir(parents=True)
    for name in ("id0_0000.mp4", "id1_0000.mp4"):
        (root / "Celeb-real" / name).write_bytes(os.urandom(EDGE_BYTES + 4096))

    def row(video_id, frame, x):
        return dict(video_id=video_id, frame_index=frame, timestamp_s=frame / 10, face_index=0, x=x, y=0, w=50, h=50,
                    confidence=0.99, crop_path=f"crops/{video_id}/f{frame}.png")

    def ingest():
        return register_videos(read_celebdf(root), {"every": 1.0}, retry_failed=False, embedded=True)

    def process(video_id, rel_path, x):  # what the worker records once it has made the crops
        _record(video_id, status="done", error=None, rows=[row(video_id, f, x) for f in (0, 10)], started=0.0,
                stamp=file_stamp(root / rel_path), rel_path=rel_path)

    plan = ingest()
    assert plan.new_videos == 2 and plan.changed_videos == 0
    for video_id, rel_path in plan.to_enqueue:
        process(video_id, rel_path, x=10)
    with session_scope() as session:
        session.add(Run(id="r1", status="done", config={}, split={}))
        session.flush()
        for crop_id in session.scalars(select(Crop.id)).all():
            session.add(SplitMember(run_id="r1", crop_id=crop_id, part="train"))

    replaced, touched = root / "Celeb-real" / "id0_0000.mp4", root / "Celeb-real" / "id1_0000.mp4"
    replaced.write_bytes(os.urandom(EDGE_BYTES + 4096))  # same size, other bytes
    later = touched.stat().st_mtime_ns + 5 * 10**9
    os.utime(touched, ns=(later, later))
    plan = ingest()
    assert plan.changed_videos == 1 and [p for _, p in plan.to_enqueue] == [REPLACED]
    with session_scope() as session:
        again = session.scalars(select(Video).order_by(Video.rel_path)).all()
        assert [(v.status, v.fingerprint) for v in again][0] == ("pending", None)
        assert (again[1].status, again[1].mtime_ns) == ("done", later)

    process(plan.to_enqueue[0][0], REPLACED, x=30)
    with session_scope() as session:
        run = session.get(Run, "r1")
        assert (run.data_changed["videos"], run.data_changed["crops"], run.data_changed["examples"]) == (1, 2, [REPLACED])
        assert session.scalar(select(func.count()).select_from(SplitMember)) == 2
        assert sorted(session.scalars(select(Crop.x)).all()) == [10, 10, 30, 30]
    assert ingest().changed_videos == 0
