"""The embedded default: real `celery worker` processes started on this machine for one command.

They use the same app, tasks and database as a cluster; only the broker differs (kombu's
filesystem transport under DATA_DIR instead of Redis).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from shared.errors import WorkFailed
from shared.labels import PENDING, RUNNING
from shared.process import command_queue, gone_from_this_host, parse_process_name, pid_alive, use_own_queues
from shared.settings import get_settings


# An idle worker (its work recorded as finished) gets this long to exit on SIGTERM before the
# whole process group is killed: nothing is in flight, and a warm shutdown of an idle prefork
# pool took 2-12 s on a busy 2-core machine, most of the time between the last video and the exit.
IDLE_STOP_S = 1.0


class WorkerDied(RuntimeError):
    pass


def celery_worker_command(queues: str, concurrency: int, name: str, extra: list[str] | None = None) -> list[str]:
    """``celery -A workers worker`` as an operator starts it (the embedded workers and the tests)."""
    return [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", str(concurrency),
            "-n", f"{name}@%h", "--loglevel", "INFO", *(extra or [])]


def stop_process_group(process: subprocess.Popen | None, timeout_s: float) -> None:
    """SIGTERM (a Celery worker's warm shutdown: children finish what they hold), then SIGKILL
    to the whole process group of a process started with ``start_new_session=True``: after the
    timeout, and also when the main process exited first, since a pool child it left behind
    (a training task still running, holding its run's lease) has no one left to report to."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group is gone already
    process.wait()


@contextmanager
def local_worker_when_embedded(queues: str, concurrency: int, name: str, **options):
    """A local worker for the duration of the block in embedded mode; None with a broker
    configured (the cluster's workers do the work). A worker that dies fails the command.

    The worker starts at once and boots (TensorFlow, models) while the block goes on: the block
    may record and enqueue work meanwhile. A block that ends normally has seen its work finished,
    so the worker is stopped without a grace period; on an error or Ctrl-C its processes get
    time to finish what they hold."""
    worker = LocalWorker(queues, concurrency, name, **options).start() if get_settings().embedded else None
    finished = False
    try:
        yield worker
        finished = True
    except WorkerDied as exc:
        raise WorkFailed(str(exc)) from None
    finally:
        if worker is not None:
            worker.stop(timeout_s=IDLE_STOP_S if finished else 30.0)


class LocalWorker:
    """``celery -A workers worker -Q <queues>`` as a child process, stopped when the block ends."""

    def __init__(self, queues: str, concurrency: int, name: str, max_tasks_per_child: int | None = None,
                 threads: int | None = None, announce: bool = False):
        self.queues, self.concurrency, self.name, self.announce = queues, concurrency, name, announce
        # Share the cores among the processes unless the user said otherwise (WORKER_THREADS).
        self.threads = threads if threads is not None else max(1, (os.cpu_count() or 1) // concurrency)
        self.max_tasks_per_child = max_tasks_per_child
        self.process: subprocess.Popen | None = None
        settings = get_settings()
        self.log_path = settings.data_dir / "logs" / f"worker-{name}.log"

    def command(self) -> list[str]:
        extra = ["--pool", "prefork", "--without-mingle", "--without-gossip"]
        if self.max_tasks_per_child:
            extra += ["--max-tasks-per-child", str(self.max_tasks_per_child)]
        queues = ",".join(command_queue(queue) for queue in self.queues.split(","))
        return celery_worker_command(queues, self.concurrency, f"{self.name}-{os.getpid()}", extra)

    def start(self) -> "LocalWorker":
        ensure_broker_dirs()  # first: names this command's queues, which the worker inherits
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["DATA_DIR"] = str(get_settings().data_dir)  # a relative DATA_DIR must mean the same folder
        env.setdefault("WORKER_THREADS", str(self.threads))
        env.setdefault("MALLOC_ARENA_MAX", "2")  # as the compose GPU worker: flat memory while training
        if self.announce:
            print(f"starting {self.concurrency} local worker process{'es' if self.concurrency > 1 else ''} "
                  f"(queue {self.queues}; each loads TensorFlow and its models: a few seconds)", file=sys.stderr)
        parent = os.getpid()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=str(Path(__file__).resolve().parent.parent), start_new_session=True,
                preexec_fn=(lambda: _die_with_parent(parent)) if sys.platform == "linux" else None,
            )
        return self

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise WorkerDied(
                f"the local worker exited with code {self.process.returncode}; see {self.log_path}"
            )

    def stop(self, timeout_s: float = 30.0) -> None:
        stop_process_group(self.process, timeout_s)

    def __enter__(self) -> "LocalWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def ensure_broker_dirs() -> None:
    """The filesystem broker's folders, made when something is about to be sent or consumed; and
    this command's own queues named (``shared.process.command_queue``): what it sends, only its
    local workers take, and they take nothing another command sent."""
    use_own_queues()
    for name in ("queue", "control"):
        (get_settings().broker_dir / name).mkdir(parents=True, exist_ok=True)


def _die_with_parent(parent_pid: int) -> None:
    """In the worker, before exec: SIGTERM (a warm shutdown) when the orchestrator dies, however it
    dies (SIGKILL included), so no worker is left taking the tasks of later runs."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def purge_embedded_queue() -> int:
    """Drop messages a previous, interrupted embedded run left in the filesystem broker: those of
    commands that no longer run (another command's queue, ``<queue>-<pid>``, is left alone)."""
    ensure_broker_dirs()
    queue_dir = get_settings().broker_dir / "queue"
    if not queue_dir.is_dir():
        return 0
    count = 0
    for path in queue_dir.iterdir():
        queue = path.name.partition(".")[2].removesuffix(".msg")  # kombu: <time>_<uuid>.<queue>.msg
        command = queue.rpartition("-")[2]
        if command.isdigit() and pid_alive(int(command)):
            continue
        try:
            path.unlink()
            count += 1
        except (FileNotFoundError, IsADirectoryError):
            pass
    return count


def orphaned_videos(dataset_id: int) -> list[tuple[int, str]]:
    """Videos marked running by a process of this host that no longer exists.

    The filesystem broker has no redelivery: when a worker child dies mid-video its message is
    gone, so the embedded orchestrator finds such videos and enqueues them again.
    """
    # Here, not at the top: a command imports this module before its local workers start, and the
    # database code would delay them (~0.8 s).
    from sqlalchemy import select, update

    from db.models import Video
    from db.session import session_scope

    orphans = []
    with session_scope() as session:
        rows = session.execute(
            select(Video.id, Video.rel_path, Video.worker).where(
                Video.dataset_id == dataset_id, Video.status == RUNNING
            )
        ).all()
        for row in rows:
            if gone_from_this_host(*parse_process_name(row.worker)):
                orphans.append((row.id, row.rel_path))
        if orphans:
            session.execute(
                update(Video).where(Video.id.in_([o[0] for o in orphans])).values(status=PENDING)
            )
    return orphans

