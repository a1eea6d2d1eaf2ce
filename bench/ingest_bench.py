"""Ingest speed: the old notebook loop vs our task code vs the pipeline with 1 and N workers.

    python bench/ingest_bench.py --out bench/out/ingest.json

Writes a Celeb-DF-like sample (944x500, 30 fps, 13 s: the dataset's typical video) and measures
videos per second for:
  notebook   decode every frame, new MTCNN() per video, full-resolution detection (the old loop)
  task       our per-video work (workers.ingest.process_video) in this one process, SQLite
  pipeline   `orchestrator ingest` with 1 and 2 local Celery worker processes (real workers,
             filesystem broker, SQLite), or against Redis/PostgreSQL when --broker/--database are given
and the peak resident memory of each worker process, and the queue + database overhead per video.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_dataset(root: Path, reals: int, fakes: int, seconds: float, fps: float) -> list[Path]:
    from shared.sample_data import make_sample_dataset

    summary = make_sample_dataset(root, reals_per_folder=reals, fakes=fakes, seconds=seconds, fps=fps,
                                  size=(944, 500), seed=7)
    return [root / rel for paths in summary["videos"].values() for rel in paths]


def notebook_loop(videos: list[Path], out_dir: Path) -> dict:
    """The reference notebook's way, kept faithful: every frame decoded, a detector per video."""
    import cv2
    from mtcnn import MTCNN

    out_dir.mkdir(parents=True, exist_ok=True)
    faces = 0
    start = time.perf_counter()
    for path in videos:
        detector = MTCNN()
        capture = cv2.VideoCapture(str(path))
        interval = int(capture.get(cv2.CAP_PROP_FPS) * 3)
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if count % interval == 0:
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                for det in detector.detect_faces(rgb):
                    if det["confidence"] > 0.95:
                        x, y, w, h = det["box"]
                        face = frame[y:y + h, x:x + w]
                        if face.size:
                            cv2.imwrite(str(out_dir / f"{path.stem}_{count}_{faces}.png"), cv2.resize(face, (128, 128)))
                            faces += 1
            count += 1
        capture.release()
    seconds = time.perf_counter() - start
    return {"videos": len(videos), "seconds": round(seconds, 2), "videos_per_s": round(len(videos) / seconds, 3),
            "crops": faces}


def task_in_process(dataset: Path, data_dir: Path, threads: int) -> dict:
    """Our task code, called directly in this process (detector built once, as in a worker)."""
    from workers.lifecycle import configure_threads

    configure_threads(threads)  # as a worker process configures itself (0: library default)
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    from db.migrate import upgrade_schema
    from db.session import reset_engine
    from workers.planning.ingest import register_videos
    from workers.planning.scan import scan_dataset
    from shared.settings import reset_settings
    from workers.faces import get_detector
    from workers.ingest import IngestParams, process_video

    reset_settings()
    reset_engine()
    upgrade_schema()
    params = IngestParams.from_settings()
    plan = register_videos(scan_dataset(dataset), params.as_dict(), retry_failed=False, embedded=True)
    get_detector()  # built once per worker process; not part of a video's cost
    per_video, work, crops = [], [], 0
    start = time.perf_counter()
    for video_id, _ in plan.to_enqueue:
        t0 = time.perf_counter()
        summary = process_video(video_id, params)
        per_video.append(time.perf_counter() - t0)
        work.append(summary["work_seconds"])
        crops += summary.get("crops", 0)
    seconds = time.perf_counter() - start
    return {"videos": len(per_video), "seconds": round(seconds, 2), "videos_per_s": round(len(per_video) / seconds, 3),
            "mean_task_s": round(statistics.mean(per_video), 4), "mean_work_s": round(statistics.mean(work), 4),
            "crops": crops}


class PeakMemory(threading.Thread):
    """Samples VmRSS of every process in a session (the worker and its children) and keeps the peak."""

    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root_pid, self.peaks, self.stop = root_pid, {}, threading.Event()
        self.cpu_s: dict[int, float] = {}  # utime + stime, last seen
        self.names: dict[int, str] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in self._tree():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmRSS:"):
                        kib = int(line.split()[1])
                        self.peaks[pid] = max(self.peaks.get(pid, 0), kib)
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu_s[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
                    self.names[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:60].decode()
                except (OSError, IndexError, ValueError):
                    pass
            time.sleep(0.2)

    def _tree(self) -> list[int]:
        pids, frontier = [], [self.root_pid]
        while frontier:
            pid = frontier.pop()
            pids.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            frontier.extend(int(c) for c in children)
        return pids


def pipeline(dataset: Path, data_dir: Path, workers: int, env_extra: dict, threads: int | None) -> dict:
    """`orchestrator ingest` end to end; throughput from the first task start to the last finish."""
    from sqlalchemy import create_engine, text

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), **env_extra)
    if threads is not None:
        env["WORKER_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "orchestrator.cli", "ingest", str(dataset), "--workers", str(workers), "--json"]
    worker_proc = None
    if "CELERY_BROKER_URL" in env_extra:
        subprocess.run([sys.executable, "-m", "orchestrator.cli", "db", "upgrade"], env=env, cwd=REPO, check=True,
                       capture_output=True)
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu", "-c", str(workers),
             "--loglevel", "WARNING"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmd.append("--wait")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    monitor = PeakMemory(worker_proc.pid if worker_proc else proc.pid)
    monitor.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - start
    monitor.stop.set()
    if worker_proc:
        worker_proc.terminate()
        worker_proc.wait()
    result = json.loads(stdout)
    url = env_extra.get("DATABASE_URL", f"sqlite:///{data_dir / 'pipeline.db'}")
    engine = create_engine(url)
    with engine.connect() as conn:
        first, last, n, busy = conn.execute(text(
            "SELECT min(started_at), max(finished_at), count(*), sum(task_seconds) FROM videos")).one()
    engine.dispose()
    if isinstance(first, str):
        first, last = datetime.fromisoformat(first), datetime.fromisoformat(last)
    window = (last - first).total_seconds()
    # Peak RSS of the worker's pool processes (the prefork children that run tasks).
    children = sorted(monitor.peaks.items())
    pool = [kib for pid, kib in children if pid not in (proc.pid, worker_proc.pid if worker_proc else -1)]
    return {
        "workers": workers, "threads_per_process": threads if threads is not None else "embedded default",
        "videos": n, "wall_s_including_startup": round(wall, 2),
        "window_s": round(window, 2), "videos_per_s": round(n / window, 3),
        "sum_task_s": round(busy, 2), "crops": result["status"]["crops"],
        "peak_rss_mib_per_process": sorted(round(k / 1024) for k in pool)[-workers - 1:],
        # CPU seconds over the whole command (start-up included): who else competes with the pool.
        "cpu_s_by_process": {f"{pid} {monitor.names.get(pid, '')[:40]}": round(cpu, 1)
                             for pid, cpu in sorted(monitor.cpu_s.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reals", type=int, default=4, help="real videos per real folder")
    parser.add_argument("--fakes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=13.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--broker", help="Redis URL: run the pipeline part against it")
    parser.add_argument("--database", help="PostgreSQL URL for the pipeline part (with --broker)")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow/OpenCV threads per process for our task code and every worker "
                             "process (1: the cluster setting, one process per core; 0: library default)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["notebook", "task", "pipeline"])
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of task, 1 worker, 2 workers (interleaved); medians are reported")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    videos = make_dataset(work / "celeb-df", args.reals, args.fakes, args.seconds, args.fps)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "threads_per_process": args.threads, "broker": "redis" if args.broker else "filesystem (embedded)",
              "dataset": {"videos": len(videos), "seconds": args.seconds, "fps": args.fps, "size": "944x500"}}
    if "notebook" not in args.skip:
        report["notebook"] = notebook_loop(videos, work / "notebook-crops")
        print("notebook", report["notebook"], flush=True)
    extra = {"CELERY_BROKER_URL": args.broker, "DATABASE_URL": args.database} if args.broker else {}
    rounds: dict[str, list[dict]] = {"task": [], "pipeline_1": [], "pipeline_2": []}
    # Rounds interleave the parts, so that drifting load on a shared machine hits all of them alike.
    for round_no in range(args.repeat):
        if "task" not in args.skip:
            rounds["task"].append(subprocess_json([sys.executable, __file__, "--_task", str(work / "celeb-df"),
                                                   str(work / f"task-data-{round_no}"), str(args.threads)]))
            print("task", rounds["task"][-1], flush=True)
        if "pipeline" not in args.skip:
            for n in (1, 2):
                if args.broker:
                    reset_remote(args.broker, args.database)
                rounds[f"pipeline_{n}"].append(pipeline(work / "celeb-df", work / f"pipeline-{n}-{round_no}", n,
                                                        extra, args.threads if args.threads > 0 else None))
                print(f"pipeline_{n}", rounds[f"pipeline_{n}"][-1], flush=True)
    for part, results in rounds.items():
        if results:
            report[part] = median_result(results)
            report[f"{part}_rounds"] = results
    summarize(report)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


def median_result(results: list[dict]) -> dict:
    """The round with the median videos/s (a real round, not a mix of rounds)."""
    ordered = sorted(results, key=lambda r: r["videos_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def reset_remote(broker: str, database: str) -> None:
    import redis
    from sqlalchemy import create_engine, text

    redis.Redis.from_url(broker).flushdb()
    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS split_members, runs, crops, videos, ingests, datasets, "
                          "alembic_version CASCADE"))
    engine.dispose()


def summarize(report: dict) -> None:
    derived = {}
    if "notebook" in report and "task" in report:
        derived["task_vs_notebook"] = round(report["task"]["videos_per_s"] / report["notebook"]["videos_per_s"], 2)
    if "pipeline_1" in report and "pipeline_2" in report:
        derived["two_vs_one_worker"] = round(report["pipeline_2"]["videos_per_s"] / report["pipeline_1"]["videos_per_s"], 2)
    if "pipeline_1" in report and "task" in report:
        per_video_pipeline = report["pipeline_1"]["window_s"] / report["pipeline_1"]["videos"]
        per_video_task = report["task"]["mean_work_s"]
        derived["queue_db_overhead_pct"] = round(100 * (per_video_pipeline - per_video_task) / per_video_task, 1)
    report["derived"] = derived


def subprocess_json(cmd: list[str]) -> dict:
    """Run a part in a fresh process so it pays its own TensorFlow start-up, as a worker does."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--_task":
        print(json.dumps(task_in_process(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))))
    else:
        main()
