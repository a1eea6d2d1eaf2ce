"""The judging service under load: N distinct videos uploaded by C concurrent clients (one API key
each) to `orchestrator serve` with W embedded predict workers, every verdict awaited.

    python bench/serve_bench.py --videos 50 --clients 10 --workers 2 --out bench/out/serve.json

Measures uploads per second (first upload sent to last answered), time to verdict per video (the
judgement's record: created to finished), p50/p95 of it, the wall time to the last verdict, and the
peak resident memory of each predict worker process (sampled every 0.5 s). Checks that every video
was judged exactly once (one record each, one attempt, all finished). The model is a `tiny` network
at the demo's 64 px with random weights (tests/judging_support.py): judging costs what it costs for
a trained one of that architecture. Videos: 1 s, 320x180, 10 fps, one face; sampled every 0.5 s.
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
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
        found += [int(p) for p in out]
        todo += [int(p) for p in out]
    return found


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_processes(server_pid: int) -> list[int]:
    """The local worker's pool processes: children of the `celery worker` the server started."""
    pool = []
    for main_pid in descendants(server_pid):
        try:
            cmd = Path(f"/proc/{main_pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "celery" in cmd and " worker " in cmd:
            pool += [int(p) for p in subprocess.run(["pgrep", "-P", str(main_pid)], capture_output=True,
                                                    text=True).stdout.split()]
    return sorted(set(pool))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import httpx

    from shared.sample_data import make_folders_sample
    from tests.judging_support import make_judging_run, pipeline_settings
    from tests.serve_support import Server, upload, wait_finished
    from tests.support import pipeline_env, run_cli

    root = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    data_dir = root / "data"
    make_judging_run(data_dir, image_size=64)
    summary = make_folders_sample(root / "videos", people=(args.videos + 1) // 2, seconds=1.0)
    videos = [root / "videos" / rel for rel in sorted(summary["videos"])][:args.videos]
    env = pipeline_env(DATA_DIR=data_dir, API_REQUESTS_PER_MINUTE=100000)
    keys = [run_cli(["api-key", "create", f"client{i}"], env).stdout.strip() for i in range(args.clients)]

    boot = time.monotonic()
    server = Server(env, root, ["--workers", str(args.workers)]).start()
    boot_s = time.monotonic() - boot
    peaks: dict[int, float] = {}
    stop = threading.Event()

    def sample_memory():
        while not stop.wait(0.5):
            for pid in worker_processes(server.process.pid):
                peaks[pid] = max(peaks.get(pid, 0.0), rss_mib(pid))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    try:
        def client_work(i: int) -> list[str]:
            ids = []
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {keys[i]}"}, timeout=120) as c:
                for video in videos[i::args.clients]:
                    answer = upload(c, video)
                    assert answer.status_code == 202, answer.text
                    ids.append(answer.json()["id"])
            return ids

        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            ids = [i for batch in pool.map(client_work, range(args.clients)) for i in batch]
        uploaded_s = time.monotonic() - started
        states = wait_finished(data_dir, ids, timeout=3600)
        all_done_s = time.monotonic() - started
    finally:
        stop.set()
        server.stop()

    from sqlalchemy import select

    from db.models import Judgement
    from db.session import session_scope

    with pipeline_settings(DATA_DIR=data_dir), session_scope() as session:
        rows = session.execute(select(Judgement.id, Judgement.attempts, Judgement.created_at, Judgement.finished_at,
                                      Judgement.task_seconds)).all()
    latencies = sorted((r.finished_at - r.created_at).total_seconds() for r in rows)
    tasks = [r.task_seconds for r in rows if r.task_seconds is not None]
    result = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cores",
        "load_average_at_end": os.getloadavg(),
        "videos": len(videos), "clients": args.clients, "workers": args.workers,
        "records": len(rows), "judged_once": len(rows) == len(ids) and all(r.attempts == 1 for r in rows),
        "statuses": {s: list(states.values()).count(s) for s in set(states.values())},
        "server_start_to_healthy_s": round(boot_s, 1),
        "uploads_per_s": round(len(ids) / uploaded_s, 2),
        "last_verdict_after_s": round(all_done_s, 1),
        "verdicts_per_s": round(len(ids) / all_done_s, 2),
        "time_to_verdict_p50_s": round(statistics.median(latencies), 2),
        "time_to_verdict_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "task_seconds_median": round(statistics.median(tasks), 3),
        "worker_process_peak_rss_mib": sorted(round(v) for v in peaks.values()),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
