"""Embedded start-up and shut-down of `orchestrator ingest`: fixed cost around the work.

    python bench/startup_bench.py --rounds 3 [--baseline-tree DIR] --out bench/out/startup.json

For each round and each source tree (this one, and optionally an older checkout given with
--baseline-tree, run back to back), `orchestrator ingest` runs on a small sample in a fresh
DATA_DIR with 2 local workers and these are taken from the clock and the database:
  startup_s   command start -> the first video claimed (videos.started_at)
  teardown_s  the last video finished (videos.finished_at) -> the command's exit
  wall_s      the whole command
Medians of the rounds are reported.

With --cpu-parts, each round also runs, per tree and in a fresh process, what a worker does on its
critical path to the first claim, timed in CPU seconds of that process (time.process_time) as well as
wall seconds: the parent's imports and preload (celery, the app and its tasks, the
`celeryd_after_setup` preload of the tree) and one pool child's preparation after the fork
(`worker_process_init`: threads, MTCNN built and traced). On a loaded machine the CPU seconds are
what other processes inflate least; the wall seconds of a whole ingest there mostly measure the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_ingest(tree: Path, dataset: Path, data_dir: Path, workers: int) -> dict:
    import sqlite3

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(tree))
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "ingest", str(dataset), "--workers", str(workers),
                    "--json"], cwd=tree, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    ended = started.timestamp() + wall
    with sqlite3.connect(data_dir / "pipeline.db") as db:
        first, last, n = db.execute("SELECT min(started_at), max(finished_at), count(*) FROM videos").fetchone()

    def stamp(text: str) -> float:
        value = datetime.fromisoformat(text)
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()

    return {"videos": n, "wall_s": round(wall, 2), "startup_s": round(stamp(first) - started.timestamp(), 2),
            "teardown_s": round(ended - stamp(last), 2)}


# A worker's critical path, in the tree's own code: the parent's imports and its preload (the signal
# handler, given a worker that consumes this command's cpu queue), then one child's preparation.
CPU_PARTS = """
import json, time
from types import SimpleNamespace
c0, w0 = time.process_time(), time.perf_counter()
import celery.bin.celery, workers.lifecycle, workers.tasks
from shared.process import command_queue
queues = SimpleNamespace(consume_from={command_queue("cpu"): None})
workers.lifecycle._preload_in_parent(None, SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=queues))))
c1, w1 = time.process_time(), time.perf_counter()
workers.lifecycle._prepare_child()
c2, w2 = time.process_time(), time.perf_counter()
print(json.dumps({"parent_cpu_s": round(c1 - c0, 2), "parent_wall_s": round(w1 - w0, 2),
                  "child_cpu_s": round(c2 - c1, 2), "child_wall_s": round(w2 - w1, 2)}))
"""


def cpu_parts(tree: Path, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(tree), WORKER_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CPU_PARTS], cwd=tree, env=env, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-tree", type=Path, help="an older checkout to compare with, run back to back")
    parser.add_argument("--cpu-parts", action="store_true",
                        help="also time the worker's critical path in CPU seconds, in fresh processes")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from shared.sample_data import make_sample_dataset

    work = Path(tempfile.mkdtemp(prefix="startup-bench-"))
    make_sample_dataset(work / "celeb-df", reals_per_folder=2, fakes=2, seconds=4.0)
    trees = {"this": REPO, **({"baseline": args.baseline_tree.resolve()} if args.baseline_tree else {})}
    rounds: dict[str, list[dict]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            result = one_ingest(tree, work / "celeb-df", work / f"data-{name}-{r}", args.workers)
            if args.cpu_parts:
                result |= cpu_parts(tree, work / f"parts-{name}-{r}")
            rounds[name].append(result)
            print(name, result, flush=True)
    report = {"load_average_at_end": os.getloadavg(), "cpus": os.cpu_count(), "rounds": rounds,
              "median": {name: {key: statistics.median(r[key] for r in results)
                                for key in results[0]}
                         for name, results in rounds.items()}}
    print(json.dumps(report["median"], indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
