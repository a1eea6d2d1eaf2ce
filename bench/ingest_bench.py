"""Ingest speed: the old notebook loop vs our task code vs the pipeline with 1 and N workers.

    python bench/ingest_bench.py --out bench/out/ingest.json

Writes a Celeb-DF-like sample (944x500, 30 fps, 13 s: the dataset's typical video; mp4v, as
cv2.VideoWriter writes it) and, when Debian's `ffmpeg` is installed, an H.264 copy of it (x264
defaults, as Celeb-DF is encoded), and measures videos per second for:
  notebook     decode every frame, new MTCNN() per video, full-resolution detection (the old loop)
  task_before  our per-video work (workers.ingest.process_video) in one process, SQLite, as it was
               before the compiled detector and seeking: the package's eager MTCNN at its default
               minimum face, every frame walked with grab()
  task         the same with today's defaults (IngestParams): compiled stages, the minimum face
               size tied to the frame, seeking where the keyframes make it pay
  decode       the sampler alone (no detection), walking vs seeking: the decode share of a video
  pipeline     `orchestrator ingest` with 1 and 2 local Celery worker processes (real workers,
               filesystem broker, SQLite), or against Redis/PostgreSQL when --broker/--database are given
and the peak resident memory of each worker process, the queue + database overhead per video, and
the command's fixed cost: from its start to the first video claimed, and from the last video done
to its exit. The task parts also record which frames had a face, so that faces the new code loses
against task_before are counted (per resolution, with --sizes).
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
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_dataset(root: Path, reals: int, fakes: int, seconds: float, fps: float,
                 size: tuple[int, int] = (944, 500)) -> list[Path]:
    from shared.sample_data import make_sample_dataset

    summary = make_sample_dataset(root, reals_per_folder=reals, fakes=fakes, seconds=seconds, fps=fps,
                                  size=size, seed=7)
    return [root / rel for paths in summary["videos"].values() for rel in paths]


def transcode_h264(src: Path, dest: Path) -> Path | None:
    """An H.264 copy of a dataset (x264 defaults, yuv420p), same layout and names; None without ffmpeg.
    Only the bench needs ffmpeg: the product reads whatever OpenCV's own FFmpeg decodes."""
    import shutil

    if shutil.which("ffmpeg") is None:
        return None
    for path in sorted(src.rglob("*")):
        if path.name.startswith("."):
            continue
        target = dest / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".mp4":
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(path), "-c:v", "libx264",
                            "-pix_fmt", "yuv420p", str(target)], check=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dest


def decode_only(dataset: Path, every: float, rounds: int) -> dict:
    """The sampler alone over every video: seconds per video walking and seeking (median of rounds),
    frames decoded per video, seeks made. Run in a fresh process with one OpenCV thread."""
    import cv2

    from workers.video import SampledFrames, index_stream, open_video

    cv2.setNumThreads(1)
    videos = sorted(dataset.rglob("*.mp4"))
    times = {"walk": [], "seek": []}
    cpu = {"walk": [], "seek": []}  # process CPU time (FFmpeg's threads included): steadier on a loaded machine
    decoded = {"walk": 0, "seek": 0}
    seeks = 0
    for _ in range(rounds):
        for mode in ("walk", "seek"):
            decoded[mode] = 0
            t0, c0 = time.perf_counter(), time.process_time()
            for path in videos:
                index = index_stream(path) if mode == "seek" else None
                capture, info = open_video(path)
                frames = SampledFrames(capture, info.fps, every, index)
                for _frame in frames:
                    pass
                capture.release()
                decoded[mode] += frames.frames_decoded
                seeks += frames.seeks if mode == "seek" else 0
            times[mode].append((time.perf_counter() - t0) / len(videos))
            cpu[mode].append((time.process_time() - c0) / len(videos))
    return {mode: {"s_per_video": round(statistics.median(t), 4), "rounds": [round(x, 4) for x in t],
                   "cpu_s_per_video": round(statistics.median(cpu[mode]), 4),
                   "frames_decoded_per_video": round(decoded[mode] / len(videos), 1)}
            for mode, t in times.items()} | {"seeks_per_video": round(seeks / rounds / len(videos), 2)}


def notebook_loop(videos: list[Path], out_dir: Path) -> dict:
    """The reference notebook's way, kept faithful: every frame decoded, a detector per video."""
    import cv2
    from mtcnn import MTCNN

    out_dir.mkdir(parents=True, exist_ok=True)
    faces = 0
    start, cpu_start = time.perf_counter(), time.process_time()
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
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    return {"videos": len(videos), "seconds": round(seconds, 2), "videos_per_s": round(len(videos) / seconds, 3),
            "cpu_s": round(cpu_s, 2), "videos_per_cpu_s": round(len(videos) / cpu_s, 3), "crops": faces}


def task_in_process(dataset: Path, data_dir: Path, threads: int, overrides: dict) -> dict:
    """Our task code, called directly in this process (detector built once, as in a worker)."""
    from workers.lifecycle import configure_threads

    configure_threads(threads)  # as a worker process configures itself (0: library default)
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    from sqlalchemy import select

    from db.migrate import upgrade_schema
    from db.models import Crop, Video
    from db.session import reset_engine, session_scope
    from workers.planning.ingest import register_videos
    from workers.datasets.celebdf import read_celebdf
    from shared.settings import reset_settings
    from workers.faces import get_detector
    from workers.ingest import IngestParams, process_video

    reset_settings()
    reset_engine()
    upgrade_schema()
    params = IngestParams.from_settings(**overrides)
    plan = register_videos(read_celebdf(dataset), params.as_dict(), retry_failed=False, embedded=True)
    get_detector().warm_up()  # built and traced once per worker process; not part of a video's cost
    per_video, work, crops = [], [], 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for video_id, _ in plan.to_enqueue:
        t0 = time.perf_counter()
        summary = process_video(video_id, params)
        per_video.append(time.perf_counter() - t0)
        work.append(summary["work_seconds"])
        crops += summary.get("crops", 0)
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    with session_scope() as session:  # which frames had a face: to count faces lost between variants
        rows = session.execute(select(Video.rel_path, Crop.frame_index).join(Crop, Crop.video_id == Video.id)).all()
    faces: dict[str, list[int]] = {}
    for rel_path, frame_index in rows:
        faces.setdefault(rel_path, []).append(frame_index)
    return {"params": params.as_dict(), "videos": len(per_video), "seconds": round(seconds, 2),
            "videos_per_s": round(len(per_video) / seconds, 3), "cpu_s": round(cpu_s, 2),
            "videos_per_cpu_s": round(len(per_video) / cpu_s, 3),
            "mean_task_s": round(statistics.mean(per_video), 4), "mean_work_s": round(statistics.mean(work), 4),
            "crops": crops, "faces_by_video": {k: sorted(v) for k, v in sorted(faces.items())}}


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
                    name = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:60].decode()
                    if name:  # a zombie's is empty: keep the name seen while it ran
                        self.names[pid] = name
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


def pipeline(dataset: Path, data_dir: Path, workers: int, env_extra: dict, threads: int | None,
             repo: Path = REPO) -> dict:
    """`orchestrator ingest` end to end; throughput from the first task start to the last finish."""
    from sqlalchemy import create_engine, text

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), **env_extra)
    if threads is not None:
        env["WORKER_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "orchestrator.cli", "ingest", str(dataset), "--workers", str(workers), "--json"]
    worker_proc = None
    if "CELERY_BROKER_URL" in env_extra:
        subprocess.run([sys.executable, "-m", "orchestrator.cli", "db", "upgrade"], env=env, cwd=repo, check=True,
                       capture_output=True)
        worker_proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu", "-c", str(workers),
             "--loglevel", "WARNING"], env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cmd.append("--wait")
    own_cpu_start = sum(os.times()[:2])  # this process's threads, left from earlier parts, compete too
    start, start_epoch = time.perf_counter(), time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    monitor = PeakMemory(worker_proc.pid if worker_proc else proc.pid)
    monitor.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - start
    own_cpu_s = sum(os.times()[:2]) - own_cpu_start
    exit_epoch = start_epoch + wall
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
    first, last = (t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in (first, last))
    window = (last - first).total_seconds()
    # Peak RSS of the worker's pool processes (the prefork children that run tasks).
    children = sorted(monitor.peaks.items())
    pool = [kib for pid, kib in children if pid not in (proc.pid, worker_proc.pid if worker_proc else -1)]
    return {
        "workers": workers, "threads_per_process": threads if threads is not None else "embedded default",
        "videos": n, "wall_s_including_startup": round(wall, 2),
        # The command's fixed cost: start -> first video claimed, last video done -> exit.
        "startup_s": round(first.timestamp() - start_epoch, 2), "teardown_s": round(exit_epoch - last.timestamp(), 2),
        "window_s": round(window, 2), "videos_per_s": round(n / window, 3),
        "sum_task_s": round(busy, 2), "crops": result["status"]["crops"],
        "bench_process_cpu_s_meanwhile": round(own_cpu_s, 2),
        "peak_rss_mib_per_process": sorted(round(k / 1024) for k in pool)[-workers - 1:],
        # CPU seconds over the whole command (start-up included): who else competes with the pool.
        "cpu_s_by_process": {f"{pid} {monitor.names.get(pid, '')[:40]}": round(cpu, 1)
                             for pid, cpu in sorted(monitor.cpu_s.items())},
    }


BEFORE = {"compiled_detector": False, "seek": False, "min_face_fraction": 0.0}  # the code before issue #9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reals", type=int, default=4, help="real videos per real folder")
    parser.add_argument("--fakes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=13.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--sizes", nargs="+", default=["944x500"],
                        help="video sizes, one dataset each (the first is the one of the notebook and pipeline)")
    parser.add_argument("--no-h264", action="store_true", help="skip the H.264 copies (made with ffmpeg)")
    parser.add_argument("--min-face-fraction", type=float, help="override IngestParams.min_face_fraction")
    parser.add_argument("--broker", help="Redis URL: run the pipeline part against it")
    parser.add_argument("--database", help="PostgreSQL URL for the pipeline part (with --broker)")
    parser.add_argument("--threads", type=int, default=1,
                        help="TensorFlow/OpenCV threads per process for our task code and every worker "
                             "process (1: the cluster setting, one process per core; 0: library default)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["notebook", "task_before", "task", "task_pair", "decode", "pipeline"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="pipeline worker counts")
    parser.add_argument("--before-repo", type=Path,
                        help="a checkout of the code before (git archive <commit> | tar -x -C DIR): its "
                             "`orchestrator ingest` runs as pipeline_before_N, interleaved with ours")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every part (interleaved); medians are reported")
    parser.add_argument("--datasets", type=Path,
                        help="folder to keep the generated datasets in and reuse them from (same options only)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    store = args.datasets or work
    sets: dict[str, Path] = {}
    notebook_videos: list[Path] = []
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        tag = f"{size}-{args.reals}r{args.fakes}f-{args.seconds:g}s-{args.fps:g}fps"
        root = store / f"celeb-df-{tag}"
        done = root / ".complete"
        if not done.exists():
            make_dataset(root, args.reals, args.fakes, args.seconds, args.fps, (width, height))
            done.touch()
        videos = sorted(root.rglob("*.mp4"))
        notebook_videos = notebook_videos or videos
        sets[f"{size}/mp4v"] = root
        if not args.no_h264:
            h264_root = store / f"celeb-df-{tag}-h264"
            if not (h264_root / ".complete").exists() and transcode_h264(root, h264_root) is not None:
                (h264_root / ".complete").touch()
            if (h264_root / ".complete").exists():
                sets[f"{size}/h264"] = h264_root
    first = next(iter(sets))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_at_start": os.getloadavg()},
              "threads_per_process": args.threads, "broker": "redis" if args.broker else "filesystem (embedded)",
              "dataset": {"videos_per_set": len(notebook_videos), "seconds": args.seconds, "fps": args.fps,
                          "sets": list(sets)},
              "before_params": BEFORE}
    overrides = {} if args.min_face_fraction is None else {"min_face_fraction": args.min_face_fraction}
    extra = {"CELERY_BROKER_URL": args.broker, "DATABASE_URL": args.database} if args.broker else {}
    rounds: dict[str, list[dict]] = {}

    def add(part: str, result: dict) -> None:
        rounds.setdefault(part, []).append(result)
        brief = {k: v for k, v in result.items() if k not in ("faces_by_video", "params", "cpu_s_by_process")}
        print(part, json.dumps(brief), flush=True)

    # Rounds interleave the parts, so that drifting load on a shared machine hits all of them alike.
    for round_no in range(args.repeat):
        if "notebook" not in args.skip:
            add("notebook", notebook_loop(notebook_videos, work / f"notebook-crops-{round_no}"))
        for name, root in sets.items():
            for variant, params in (("task_before", BEFORE), ("task", overrides)):
                if variant not in args.skip:
                    add(f"{variant}@{name}", subprocess_json(
                        [sys.executable, __file__, "--_task", str(root), str(work / f"{variant}-{name}-{round_no}"),
                         str(args.threads), json.dumps(params)]))
            if "task_pair" not in args.skip and name == first:
                add("task_pair", task_pair(root, work / f"task-pair-{round_no}", args.threads, overrides))
            if "decode" not in args.skip:
                add(f"decode@{name}", subprocess_json([sys.executable, __file__, "--_decode", str(root)]))
        if "pipeline" not in args.skip:
            for n in args.workers:
                if args.broker:
                    reset_remote(args.broker, args.database)
                runs = [(f"pipeline_{n}", REPO)] + ([(f"pipeline_before_{n}", args.before_repo)] if args.before_repo else [])
                # Alternate which checkout goes first: the first to import TensorFlow after a pause may
                # pay for reading its libraries back into the page cache.
                for part, repo in (runs if round_no % 2 == 0 else runs[::-1]):
                    add(part, pipeline(sets[first], work / f"{part}-{round_no}", n, extra,
                                       args.threads if args.threads > 0 else None, repo=repo))
    for part, results in rounds.items():
        report[part] = median_result(results) if "videos_per_s" in results[0] else results[0]
        report[f"{part}_rounds"] = results
    summarize(report, sets, first)
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("_rounds")}, indent=2, default=str))
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


def ratio_of_rounds(report: dict, top: str, bottom: str) -> dict | None:
    """top/bottom videos per second: per round (parts of one round ran back to back) and their median."""
    tops, bottoms = report.get(f"{top}_rounds"), report.get(f"{bottom}_rounds")
    if not tops or not bottoms:
        return None
    per_round = [round(t["videos_per_s"] / b["videos_per_s"], 2) for t, b in zip(tops, bottoms)]
    result = {"median": statistics.median(per_round), "rounds": per_round}
    if all("videos_per_cpu_s" in r for r in tops + bottoms):
        cpu = [round(t["videos_per_cpu_s"] / b["videos_per_cpu_s"], 2) for t, b in zip(tops, bottoms)]
        result |= {"cpu_median": statistics.median(cpu), "cpu_rounds": cpu}
    return result


def faces_lost(before: dict, after: dict) -> dict:
    """Frames where the code before found a face and the new code finds none (and the reverse)."""
    lost, gained, frames_before = [], [], 0
    for video in sorted(set(before["faces_by_video"]) | set(after["faces_by_video"])):
        b, a = set(before["faces_by_video"].get(video, [])), set(after["faces_by_video"].get(video, []))
        frames_before += len(b)
        lost += [f"{video}#{i}" for i in sorted(b - a)]
        gained += [f"{video}#{i}" for i in sorted(a - b)]
    return {"frames_with_a_face_before": frames_before, "crops_before": before["crops"],
            "crops_after": after["crops"], "frames_lost": lost, "frames_gained": gained}


def summarize(report: dict, sets: dict, first: str) -> None:
    derived = {}
    for name in sets:
        row = {}
        for variant in ("task_before", "task"):
            if f"{variant}@{name}" in report:
                row[f"{variant}_videos_per_s"] = report[f"{variant}@{name}"]["videos_per_s"]
                if name == first and "notebook" in report:
                    row[f"{variant}_vs_notebook"] = ratio_of_rounds(report, f"{variant}@{name}", "notebook")
        if f"task@{name}" in report and f"task_before@{name}" in report:
            row["task_vs_task_before"] = ratio_of_rounds(report, f"task@{name}", f"task_before@{name}")
            row["faces"] = faces_lost(report[f"task_before@{name}"], report[f"task@{name}"])
        if f"decode@{name}" in report and f"task@{name}" in report:
            decode = report[f"decode@{name}"]
            row["decode_s_per_video"] = {m: decode[m]["s_per_video"] for m in ("walk", "seek")}
            row["decode_cpu_s_per_video"] = {m: decode[m]["cpu_s_per_video"] for m in ("walk", "seek")}
            row["decode_share_of_task"] = round(decode["seek"]["s_per_video"] / report[f"task@{name}"]["mean_work_s"], 3)
            if f"task_before@{name}" in report:
                row["decode_share_of_task_before"] = round(
                    decode["walk"]["s_per_video"] / report[f"task_before@{name}"]["mean_work_s"], 3)
        derived[name] = row
    if "task_pair" in report and f"task@{first}" in report:
        derived["task_two_vs_one_process"] = ratio_of_rounds(report, "task_pair", f"task@{first}")
    for prefix in ("pipeline", "pipeline_before"):
        if f"{prefix}_1" in report and f"{prefix}_2" in report:
            derived[f"{prefix}_two_vs_one_worker"] = ratio_of_rounds(report, f"{prefix}_2", f"{prefix}_1")
        for n in (1, 2):
            if f"{prefix}_{n}" not in report:
                continue
            rounds_ = report[f"{prefix}_{n}_rounds"]
            derived[f"{prefix}_{n}_startup_s"] = statistics.median(r["startup_s"] for r in rounds_)
            derived[f"{prefix}_{n}_teardown_s"] = statistics.median(r["teardown_s"] for r in rounds_)
            if "notebook" in report:
                walls = [round(nb["seconds"] / p["wall_s_including_startup"], 2)
                         for nb, p in zip(report["notebook_rounds"], rounds_)]
                derived[f"{prefix}_{n}_wall_vs_notebook"] = {"median": statistics.median(walls), "rounds": walls}
    if "pipeline_1" in report and f"task@{first}" in report:
        per_video_pipeline = report["pipeline_1"]["window_s"] / report["pipeline_1"]["videos"]
        per_video_task = report[f"task@{first}"]["mean_work_s"]
        derived["queue_db_overhead_pct"] = round(100 * (per_video_pipeline - per_video_task) / per_video_task, 1)
    report["derived"] = derived


def task_pair(dataset: Path, out_dir: Path, threads: int, overrides: dict) -> dict:
    """The task code in two processes at once, each on every video: what two processes on this
    machine give for this very work without queue or database, the ceiling of 2 workers / 1."""
    procs = [subprocess.Popen([sys.executable, __file__, "--_task", str(dataset), str(out_dir / str(i)),
                               str(threads), json.dumps(overrides)], stdout=subprocess.PIPE, text=True)
             for i in range(2)]
    results = []
    for proc in procs:
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"task_pair process failed with {proc.returncode}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    videos = sum(r["videos"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return {"videos": videos, "seconds": round(seconds, 2), "videos_per_s": round(videos / seconds, 3),
            "per_process_videos_per_s": [r["videos_per_s"] for r in results]}


def subprocess_json(cmd: list[str]) -> dict:
    """Run a part in a fresh process so it pays its own TensorFlow start-up, as a worker does."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--_task":
        print(json.dumps(task_in_process(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), json.loads(sys.argv[5]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "--_decode":
        print(json.dumps(decode_only(Path(sys.argv[2]), every=3.0, rounds=3)))
    else:
        main()
