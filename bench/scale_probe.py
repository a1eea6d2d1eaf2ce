"""Scale probe: what the orchestrator, PostgreSQL and Redis cost per video at Celeb-DF size and beyond.

    python bench/scale_probe.py --scale 1 --out bench/out/scale-1x.json     # 6,529 videos (Celeb-DF v2)
    python bench/scale_probe.py --scale 10 --out bench/out/scale-10x.json   # 65,290 videos

No video is decoded: the dataset is a Celeb-DF-shaped tree of EMPTY .mp4 files (590 Celeb-real,
300 YouTube-real, 5,639 Celeb-synthesis per unit of --scale) and the workers' results are written
as the worker would write them (``--crops-per-video`` crop rows per video, status done). What is
real: the product's own code for scanning, registering (``register_videos``), enqueueing
(``enqueue_videos``, one Celery message per video to Redis), ``orchestrator status``
(``ingest_status``), the ``--wait`` poll (``dataset_counts``), the ``--then-train`` barrier's count,
the split (``plan_run``: split_members rows), the training task's ``load_split``, and ``export``.

Needs PostgreSQL (a database is created and dropped: --pg-admin-url) and Redis (database
--redis-db, which must be empty; it is flushed at the end). Measures time, rows, bytes per row
(``pg_total_relation_size``), Redis message bytes, and this process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CELEB_DF_V2 = {"Celeb-real": 590, "YouTube-real": 300, "Celeb-synthesis": 5639}
CELEB_DF_IDENTITIES = 59  # celebrities in Celeb-real (id0..id61, a few numbers unused)


def rss_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def make_tree(root: Path, scale: int) -> dict[str, int]:
    """Empty .mp4 files named like Celeb-DF v2, ``scale`` times as many; every fake's source exists."""
    identities = CELEB_DF_IDENTITIES * scale
    reals = CELEB_DF_V2["Celeb-real"] * scale
    per_identity = -(-reals // identities)
    real_names = []
    for k in range(reals):
        real_names.append((f"id{k % identities}", k // identities))
    for folder in CELEB_DF_V2:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for ident, n in real_names:
        (root / "Celeb-real" / f"{ident}_{n:04d}.mp4").touch()
    for n in range(CELEB_DF_V2["YouTube-real"] * scale):
        (root / "YouTube-real" / f"{n:05d}.mp4").touch()
    for k in range(CELEB_DF_V2["Celeb-synthesis"] * scale):
        ident, n = real_names[k % reals]
        target = f"id{(int(ident[2:]) + 1 + k // reals) % identities}"
        (root / "Celeb-synthesis" / f"{ident}_{target}_{n:04d}.mp4").touch()
    return {"identities": identities, "videos_per_identity": per_identity}


def timed(report: dict, key: str, function):
    start = time.perf_counter()
    value = function()
    report[key] = round(time.perf_counter() - start, 3)
    print(f"{key}: {report[key]} s", flush=True)
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1, help="multiple of Celeb-DF v2's 6,529 videos")
    parser.add_argument("--crops-per-video", type=int, default=5, help="13 s at one frame every 3 s, one face")
    parser.add_argument("--pg-admin-url", default=os.environ.get("TEST_PG_ADMIN_URL",
                                                                   "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import redis
    from sqlalchemy import create_engine, text

    broker = f"{args.redis_url}/{args.redis_db}"
    r = redis.Redis.from_url(broker)
    if r.dbsize():
        raise SystemExit(f"redis database {args.redis_db} is not empty: choose another --redis-db")
    db_name = f"scale_probe_{os.getpid()}"
    admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    db_url = args.pg_admin_url.rsplit("/", 1)[0] + f"/{db_name}"
    work = Path(tempfile.mkdtemp(prefix="scale-probe-"))
    os.environ.update(DATABASE_URL=db_url, CELERY_BROKER_URL=broker, DATA_DIR=str(work / "data"))
    report: dict = {"scale": args.scale, "crops_per_video": args.crops_per_video}
    try:
        probe(args, report, work, r)
    finally:
        from db.session import reset_engine

        reset_engine()
        r.flushdb()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)
    report["peak_rss_mib"] = rss_mib()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def probe(args, report: dict, work: Path, r) -> None:
    from sqlalchemy import func, insert, select, text, update

    from db.models import Crop, Video
    from db.migrate import upgrade_schema
    from db.session import get_engine, session_scope
    from workers.planning.ingest import dataset_counts, enqueue_videos, register_videos
    from workers.planning.status import export_rows, ingest_status
    from workers.datasets.celebdf import read_celebdf
    from workers.planning.runs import plan_run
    from shared.labels import DONE
    from workers.ingest import IngestParams, crop_dir_for, crop_file_name
    from workers.training.run import load_split

    report["tree"] = timed(report, "make_tree_s", lambda: make_tree(work / "celeb-df", args.scale))
    upgrade_schema()
    params = IngestParams().as_dict()
    scan = timed(report, "scan_s", lambda: read_celebdf(work / "celeb-df"))
    report["videos"] = len(scan.videos)
    rss_before = rss_mib()
    plan = timed(report, "register_videos_s", lambda: register_videos(scan, params, retry_failed=False,
                                                                          embedded=False, then_train=True))
    report["register_peak_rss_growth_mib"] = rss_mib() - rss_before

    from workers.planning.barrier import _any_unfinished

    def barrier_check():  # what start_training_when_done asks after EVERY video with --then-train
        with session_scope() as session:
            return _any_unfinished(session, plan.dataset_id)

    def barrier_check_none_pending():  # the worst case for EXISTS: it must scan to find nothing
        with session_scope() as session:
            session.execute(update(Video).where(Video.dataset_id == plan.dataset_id).values(status="done"))
            try:
                return _any_unfinished(session, plan.dataset_id)
            finally:
                session.rollback()

    timed(report, "barrier_check_all_pending_s", barrier_check)
    timed(report, "barrier_check_none_pending_s", barrier_check_none_pending)
    try:
        timed(report, "enqueue_videos_s", lambda: enqueue_videos(plan.ingest_id, plan.to_enqueue, params))
        report["redis_queue_length"] = r.llen("cpu")
        report["redis_queue_memory_bytes"] = r.memory_usage("cpu")
        report["redis_used_memory_bytes"] = r.info("memory")["used_memory"]
        sample = r.lrange("cpu", 0, 99)
        report["message_mean_bytes"] = round(sum(map(len, sample)) / len(sample), 1)
    except Exception as exc:  # noqa: BLE001 - the failure itself is a finding
        report["enqueue_error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        print("enqueue failed:", report["enqueue_error"], flush=True)
    r.flushdb()

    # The workers' part, written the way workers/ingest.py::_record writes it.
    def simulate_workers():
        with session_scope() as session:
            rows = session.execute(select(Video.id, Video.dataset_id, Video.rel_path)).all()
        batch = []
        with get_engine().begin() as conn:
            conn.execute(update(Video).values(
                status=DONE, fps=30.0, width=944, height=500, frames_decoded=390, frames_sampled=5,
                worker="cpu-worker-7f3c9a2b1d4e:12345", task_seconds=0.5,
                started_at=func.now(), finished_at=func.now()))
            for video_id, dataset_id, rel_path in rows:
                folder = crop_dir_for(dataset_id, rel_path)
                for k in range(args.crops_per_video):
                    frame = k * 90
                    batch.append(dict(video_id=video_id, frame_index=frame, timestamp_s=frame / 30.0,
                                      face_index=0, x=402, y=118, w=141, h=176, confidence=0.9993,
                                      crop_path=str(folder / crop_file_name(frame, 0))))
                if len(batch) >= 20000:
                    conn.execute(insert(Crop), batch)
                    batch.clear()
            if batch:
                conn.execute(insert(Crop), batch)

    timed(report, "simulate_workers_s", simulate_workers)
    with get_engine().begin() as conn:
        conn.execute(text("ANALYZE"))
    timed(report, "wait_poll_dataset_counts_s", lambda: dataset_counts(plan.dataset_id))
    timed(report, "status_ingest_status_s", ingest_status)
    rss_before = rss_mib()
    run_id, split = timed(report, "plan_run_split_s", lambda: plan_run({"epochs": 1, "weights": "none"}))
    report["plan_run_peak_rss_growth_mib"] = rss_mib() - rss_before
    report["split"] = split
    rss_before = rss_mib()
    parts = timed(report, "load_split_s", lambda: load_split(run_id))
    report["load_split_peak_rss_growth_mib"] = rss_mib() - rss_before
    report["train_crops"] = len(parts["train"]["paths"])
    del parts
    timed(report, "export_all_rows_s", lambda: sum(1 for _ in export_rows()))

    report["in_list_70000_ids"] = in_list_check(70000)
    # As left by the run (dead row versions of the status updates included; autovacuum reclaims them
    # over time), then compacted (VACUUM FULL): the live size per row.
    report["tables"] = table_sizes(get_engine())
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM FULL ANALYZE"))
    report["tables_after_vacuum_full"] = table_sizes(get_engine())
    with get_engine().connect() as conn:
        report["database_bytes"] = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    sizes = report["tables_after_vacuum_full"]
    print(json.dumps(sizes, indent=2), flush=True)


def table_sizes(engine) -> dict:
    from sqlalchemy import text

    sizes = {}
    with engine.connect() as conn:
        for table in ("videos", "crops", "split_members", "runs", "ingests", "datasets"):
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            total, heap, indexes = conn.execute(text(
                f"SELECT pg_total_relation_size('{table}'), pg_relation_size('{table}'), "
                f"pg_indexes_size('{table}')")).one()
            sizes[table] = {"rows": rows, "total_bytes": total, "heap_bytes": heap, "index_bytes": indexes,
                            "bytes_per_row": round(total / rows, 1) if rows else None}
    return sizes


def in_list_check(n: int) -> dict:
    """enqueue_videos' UPDATE ... WHERE id IN (<every video id>) with ``n`` ids, on PostgreSQL (this
    probe's database) and on SQLite (the embedded mode), rolled back. The error, if any, is the finding."""
    from sqlalchemy import create_engine, update

    from db.models import Base, Video
    from db.session import get_engine

    results = {}
    for name, engine in (("postgresql", get_engine()), ("sqlite", create_engine("sqlite://"))):
        if name == "sqlite":
            Base.metadata.create_all(engine)
        conn = engine.connect()
        try:
            with conn.begin() as transaction:
                conn.execute(update(Video).where(Video.id.in_(list(range(1, n + 1)))).values(enqueued_at=None))
                transaction.rollback()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - the failure is the finding
            results[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        finally:
            conn.close()
        print(f"IN list of {n} ids on {name}: {results[name]}", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
