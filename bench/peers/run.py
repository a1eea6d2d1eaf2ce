"""Our ingest against the field's own preprocessing, same videos, same protocol (issue #20).

    python bench/peers/run.py --out docs/results/peers.json            # or: bash bench/peers/run.sh

Three ways of turning videos into 32 face crops of 256 px each, run back to back on each video set:
  deepfakebench  bench/peers/dfb_preprocess.py in .venv-dfb: dlib HOG detector + landmarks, aligned
  dfdc-winner    bench/peers/dfdc_preprocess.py in .venv-dfdc: facenet-pytorch MTCNN (CPU torch)
  ours           `orchestrator ingest --protocol deepfakebench --workers 2` (32 frames, aligned, largest face,
                 256 px, MTCNN's every face: confidence >= 0.8),
                 embedded (SQLite + filesystem broker), this checkout; `ours-1w` the same with 1 worker
The peers' virtual environments are built here on first use (bench/peers/.venv-*, git-ignored; their
packages never enter the project's dependencies). The video sets are Celeb-DF-shaped samples
(shared/sample_data.py): the 60-video set of bench/ingest_bench.py (944x500, 13 s, 30 fps, mp4v and an
H.264 copy) and smaller 1280x720 and 1920x1080 H.264 sets.

Per run: wall time of the whole command (start-up included), CPU seconds of the process and every
descendant (getrusage of children), the peak resident memory of each process (sampled every 0.2 s),
the frames where a face was found (a crop written), each one's recall against the union of the three,
and the IoU of the largest boxes between detectors on frames where both found one. Rounds
interleave the peers and rotate their order, so that drifting load hits them alike.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from ingest_bench import PeakMemory, make_dataset, transcode_h264  # noqa: E402

VENVS = {
    # dlib-bin: dlib's wheels (pip's `dlib` builds from source); the 68-point predictor comes with
    # face-recognition-models (DeepfakeBench's 81-point one is not on a registry).
    "deepfakebench": ("dfb", ["dlib-bin==20.0.1.post1", "face-recognition-models==0.3.0", "imutils==0.5.4",
                              "opencv-python-headless==5.1.0.95", "numpy==2.4.6", "scikit-image==0.26.0"], []),
    # facenet-pytorch 2.6.0 pins torch 2.2.x, which has no wheel for this Python here; its MTCNN runs
    # unchanged on today's torch, so it is installed without its pins. PyPI's torch/torchvision are
    # CUDA builds; with no GPU they run the same CPU kernels as the +cpu build (whose matching
    # torchvision is not on PyPI).
    "dfdc-winner": ("dfdc", ["torch==2.14.1", "torchvision==0.29.1", "opencv-python-headless==5.1.0.95",
                             "numpy==2.4.6", "pillow", "requests", "tqdm"], ["facenet-pytorch==2.6.0"]),
}
PROTOCOL = ["--protocol", "deepfakebench"]


def venv_python(name: str) -> Path:
    return HERE / f".venv-{name}" / "bin" / "python"


def ensure_venv(peer: str) -> Path:
    name, packages, no_deps = VENVS[peer]
    python = venv_python(name)
    marker = python.parent.parent / ".complete"
    if marker.exists():
        return python
    print(f"building {python.parent.parent} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(python.parent.parent)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + packages, check=True)
    if no_deps:
        subprocess.run(pip + ["--no-deps"] + no_deps, check=True)
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    marker.write_text(freeze)
    return python


def subset(root: Path, count: int) -> Path:
    """A folder with `count` of root's videos, evenly spread over its sorted list (hard links, same
    layout), so that a smaller run uses the very videos of the full set."""
    videos = sorted(root.rglob("*.mp4"))
    if count >= len(videos):
        return root
    dest = root.with_name(f"{root.name}-first{count}")
    if not (dest / ".complete").exists():
        shutil.rmtree(dest, ignore_errors=True)
        step = len(videos) / count
        for k in range(count):
            video = videos[int(k * step)]
            target = dest / video.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(video, target)
        (dest / ".complete").touch()
    return dest


def make_sets(store: Path, spec: list[str]) -> dict[str, Path]:
    """spec items: WxH:REALS:FAKES:CODECS[:N] (codecs mp4v, h264 or both joined by +; N: use only N of
    the set's videos, evenly spread)."""
    sets = {}
    for item in spec:
        size, reals, fakes, codecs, *count = item.split(":")
        width, height = (int(v) for v in size.split("x"))
        root = store / f"{size}-{reals}r{fakes}f-13s-30fps"
        if not (root / ".complete").exists():
            print(f"making {root}", flush=True)
            make_dataset(root, int(reals), int(fakes), 13.0, 30.0, (width, height))
            (root / ".complete").touch()
        if "mp4v" in codecs.split("+"):
            sets[f"{size}/mp4v"] = subset(root, int(count[0])) if count else root
        if "h264" in codecs.split("+"):
            h264 = store / f"{root.name}-h264"
            if not (h264 / ".complete").exists():
                if transcode_h264(root, h264) is None:
                    raise SystemExit("ffmpeg is needed for the H.264 sets (apt-get install ffmpeg)")
                (h264 / ".complete").touch()
            sets[f"{size}/h264"] = subset(h264, int(count[0])) if count else h264
    return sets


def measured(cmd: list[str], env: dict | None = None, cwd: Path = REPO) -> dict:
    """Run a command; wall time, CPU of it and all its descendants, peak RSS per process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_epoch, t0 = time.time(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    monitor = PeakMemory(proc.pid)
    monitor.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    monitor.stop.set()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {stderr[-2000:]}")
    reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Processes killed with their parent (an idle embedded worker's pool is SIGKILLed with its process
    # group) are reaped by init, not counted above: their CPU is read from /proc every 0.2 s instead.
    sampled = sum(monitor.cpu_s.values())
    cpu = max(reaped, sampled)
    peaks = {f"{pid} {monitor.names.get(pid, '?')[:48]}": round(kib / 1024) for pid, kib in sorted(monitor.peaks.items())}
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_s_reaped": round(reaped, 2),
            "cpu_s_sampled": round(sampled, 2), "start_epoch": start_epoch,
            "peak_rss_mib_by_process": peaks, "max_rss_mib": max(peaks.values(), default=0),
            "stdout": stdout, "stderr_tail": stderr[-500:]}


def run_deepfakebench(dataset: Path, out: Path) -> tuple[dict, dict]:
    result = measured([str(venv_python("dfb")), str(HERE / "dfb_preprocess.py"), str(dataset), str(out)])
    report = json.loads((out / "peer.json").read_text())
    result["startup_s"] = round(result["wall_s"] - report["seconds_after_imports"], 2)  # interpreter + imports
    faces = {(r["video"], r["frame"]): r["box"] for r in report["frames"] if r["kept"]}
    first_stage = sum(1 for r in report["frames"] if r["box"] is not None)
    result |= {"frames_sampled": len(report["frames"]), "first_detection_frames": first_stage,
               "crops": len(faces), "threads": report["threads"], "predictor_load_s": report["predictor_load_s"],
               "thread_seconds": report["thread_seconds"]}
    return result, faces


def run_dfdc(dataset: Path, out: Path) -> tuple[dict, dict]:
    result = measured([str(venv_python("dfdc")), str(HERE / "dfdc_preprocess.py"), str(dataset), str(out)])
    report = json.loads((out / "peer.json").read_text())
    result["startup_s"] = round(result["wall_s"] - report["seconds_after_imports"], 2)  # interpreter + imports
    faces = {}
    for r in report["frames"]:
        if r["faces"]:
            faces[(r["video"], r["frame"])] = max((f["box"] for f in r["faces"]), key=lambda b: b[2] * b[3])
    result |= {"frames_sampled": len(report["frames"]), "crops": sum(len(r["faces"]) for r in report["frames"]),
               "threads": report["threads"], "torch_threads": report["torch_threads"],
               "thresholds": report["thresholds"], "thread_seconds": report["thread_seconds"]}
    return result, faces


def run_ours(dataset: Path, data_dir: Path, workers: int) -> tuple[dict, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    result = measured([sys.executable, "-m", "orchestrator.cli", "ingest", str(dataset), "--workers", str(workers),
                       *PROTOCOL, "--json"], env=env)
    with sqlite3.connect(data_dir / "pipeline.db") as db:
        first, last, n, busy, sampled = db.execute(
            "SELECT min(started_at), max(finished_at), count(*), sum(task_seconds), sum(frames_sampled) "
            "FROM videos").fetchone()
        rows = db.execute("SELECT v.rel_path, c.frame_index, c.x, c.y, c.w, c.h FROM crops c "
                          "JOIN videos v ON v.id = c.video_id").fetchall()
    faces: dict = {}
    for rel, frame, x, y, w, h in rows:
        key = (rel, frame)
        if key not in faces or w * h > faces[key][2] * faces[key][3]:
            faces[key] = [x, y, w, h]

    def stamp(text: str) -> float:
        value = datetime.fromisoformat(text)
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()

    result |= {"workers": workers, "videos": n, "frames_sampled": sampled, "crops": len(rows),
               "startup_s": round(stamp(first) - result["start_epoch"], 2),
               "teardown_s": round(result["start_epoch"] + result["wall_s"] - stamp(last), 2),
               "window_s": round(stamp(last) - stamp(first), 2), "sum_task_s": round(busy, 2)}
    return result, faces


STARTUP_PARTS = {
    # each a fresh `python -c`: what a worker pays before its first claim, piece by piece
    "python": "pass",
    "celery app (workers)": "import workers",
    "orchestrator cli": "import orchestrator.cli",
    "cv2": "import cv2",
    "tensorflow": "import tensorflow",
    "mtcnn (tensorflow + keras)": "import mtcnn",
    "worker parent preload (celery + workers.lifecycle + mtcnn)": "import workers.lifecycle, mtcnn",
}
WARM_UP = ("import time, mtcnn; from workers.lifecycle import configure_threads, warm_up_detector; "
           "configure_threads(1); t = time.perf_counter(); warm_up_detector(); print(time.perf_counter() - t)")


def startup_parts(rounds: int) -> dict:
    """Wall seconds of each import in a fresh process (median of rounds), and one child's detector
    warm-up (build + trace), as the worker's pool children do after the fork."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    out = {}
    for _ in range(rounds):
        for name, code in STARTUP_PARTS.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
            out.setdefault(name, []).append(round(time.perf_counter() - t0, 2))
        warm = subprocess.run([sys.executable, "-c", WARM_UP], env=env, check=True, capture_output=True, text=True)
        out.setdefault("child warm-up: build + trace MTCNN (after the imports)", []).append(
            round(float(warm.stdout.strip().splitlines()[-1]), 2))
    return {name: {"median": sorted(v)[len(v) // 2], "rounds": v} for name, v in out.items()}


def iou(a: list, b: list) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def compare(found: dict[str, dict]) -> dict:
    """Recall of each against the union of frames where any found a face; IoU of largest boxes."""
    union = set().union(*(set(f) for f in found.values()))
    out = {"union_frames": len(union),
           "recall": {name: round(len(f) / len(union), 4) if union else None for name, f in found.items()},
           "frames_with_face": {name: len(f) for name, f in found.items()}}
    pairs = {}
    for a, b in itertools.combinations(found, 2):
        both = set(found[a]) & set(found[b])
        values = sorted(iou(found[a][k], found[b][k]) for k in both)
        if values:
            pairs[f"{a} vs {b}"] = {"frames": len(values), "median": round(values[len(values) // 2], 3),
                                    "mean": round(sum(values) / len(values), 3),
                                    "under_0.3": sum(v < 0.3 for v in values)}
    out["box_iou"] = pairs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+",
                        default=["944x500:15:30:mp4v+h264", "1280x720:2:4:h264", "1920x1080:1:2:h264"],
                        help="WxH:REALS_PER_FOLDER:FAKES:CODECS per set (default: the 60-video bench set "
                             "in mp4v and H.264, 8 videos at 720p, 4 at 1080p)")
    parser.add_argument("--peers", nargs="+", default=["deepfakebench", "dfdc-winner", "ours"],
                        choices=["deepfakebench", "dfdc-winner", "ours", "ours-1w"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--datasets", type=Path, default=REPO / "bench" / "out" / "peers-data",
                        help="where the video sets are made and reused from")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "peers-work",
                        help="crops and databases of each run (emptied first)")
    parser.add_argument("--startup-parts", type=int, default=0, metavar="ROUNDS",
                        help="also time the pieces of our workers' start-up (imports, detector warm-up)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    for peer in args.peers:
        if peer in VENVS:
            ensure_venv(peer)
    sets = make_sets(args.datasets, args.sets)
    shutil.rmtree(args.work, ignore_errors=True)
    report: dict = {
        "command": "python bench/peers/run.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "cpu": _cpu_name(),
                    "load_avg_at_start": os.getloadavg(), "started": datetime.now(timezone.utc).isoformat()},
        "protocol": "32 frames evenly spaced (np.linspace), largest face, aligned where the peer aligns, 256 px PNG",
        "peer_environments": {peer: venv_python(VENVS[peer][0]).parent.parent.joinpath(".complete").read_text().split()
                              for peer in args.peers if peer in VENVS},
        "sets": {},
    }
    order = list(args.peers)
    for name, root in sets.items():
        videos = len(list(root.rglob("*.mp4")))
        entry = report["sets"].setdefault(name, {"videos": videos, "folder": root.name, "rounds": []})
        for round_no in range(args.rounds):
            results, found = {}, {}
            for peer in order:
                out = args.work / name.replace("/", "-") / f"{peer}-{round_no}"
                out.mkdir(parents=True)
                load = os.getloadavg()[0]
                if peer == "deepfakebench":
                    result, faces = run_deepfakebench(root, out)
                elif peer == "dfdc-winner":
                    result, faces = run_dfdc(root, out)
                else:
                    result, faces = run_ours(root, out, 2 if peer == "ours" else 1)
                result.pop("stdout")
                result |= {"load_avg_1m_before": load, "cpu_s_per_video": round(result["cpu_s"] / videos, 3),
                           "videos_per_s": round(videos / result["wall_s"], 3)}
                results[peer], found[peer] = result, faces
                print(name, round_no, peer, json.dumps({k: v for k, v in result.items()
                                                        if k not in ("peak_rss_mib_by_process", "stderr_tail")}),
                      flush=True)
            order = order[1:] + order[:1]  # the next set or round starts with the next peer
            entry["rounds"].append({"results": results, "faces": compare(found)})
        _summarize(entry)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))  # after every set: a partial run still leaves numbers
    if args.startup_parts:
        report["startup_parts_s"] = startup_parts(args.startup_parts)
        print(json.dumps(report["startup_parts_s"]), flush=True)
    report["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2))
    for name, entry in report["sets"].items():
        print(name, json.dumps(entry["summary"]))


def _summarize(entry: dict) -> None:
    """Median of the rounds per peer and measure; ours ÷ each peer in wall time."""
    peers = entry["rounds"][0]["results"].keys()
    summary = {}
    for peer in peers:
        rows = [r["results"][peer] for r in entry["rounds"]]
        med = lambda key: sorted(r[key] for r in rows)[len(rows) // 2]  # noqa: E731
        summary[peer] = {"wall_s": med("wall_s"), "cpu_s_per_video": med("cpu_s_per_video"),
                         "max_rss_mib": med("max_rss_mib"),
                         "recall": sorted(r["faces"]["recall"][peer] for r in entry["rounds"])[len(rows) // 2]}
        if "startup_s" in rows[0]:
            summary[peer]["startup_s"] = med("startup_s")
    if "ours" in summary:
        for peer in peers:
            if peer not in ("ours", "ours-1w"):
                summary[f"ours_wall_speedup_vs_{peer}"] = round(summary[peer]["wall_s"] / summary["ours"]["wall_s"], 2)
                summary[f"ours_cpu_ratio_vs_{peer}"] = round(
                    summary[peer]["cpu_s_per_video"] / summary["ours"]["cpu_s_per_video"], 2)
        if "ours-1w" in summary:
            summary["ours_2_workers_over_1_wall"] = round(summary["ours-1w"]["wall_s"] / summary["ours"]["wall_s"], 2)
    entry["summary"] = summary


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
