"""Faults injected into a running cluster: nothing is lost, nothing is done twice.

Real `redis-server`, PostgreSQL and `celery worker` processes (no mocks, no eager mode). Each test
runs its own `redis-server` (fixture `private_redis`), so it can stop and restart the broker, and
shares no queue with other test runs on the machine. What every test checks at the end:

- every video is finished (done, or no_face/failed for what has no face or cannot be read);
- one set of crops per video: no duplicate (video, frame, face) rows, the crop rows of a video name
  exactly the files in its crop folder (no orphan, no temporary file, nothing missing);
- how often each video was started (``videos.attempts``): only the interrupted ones twice.

With FAULT_REPORT=path, the figures each test measured are appended to that file (one JSON line
per test); docs/reliability.md reports them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import REPO, CeleryWorker, pipeline_env, run_cli, run_cli_json, wait_until
from workers.crop_pack import PACK_NAME, read_pack

pytestmark = pytest.mark.integration

FINISHED = ("done", "no_face", "failed")
LONG_VIDEOS = 8  # long_videos: 3 Celeb-real + 3 YouTube-real + 2 Celeb-synthesis
TRAIN = ["--then-train", "--train-option", "epochs=1", "--train-option", "weights=none",
         "--train-option", "backbone=mobilenetv2", "--train-option", "batch_size=8"]


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> Path:
    """8 videos of 60 s at 2 fps: 20 sampled frames, a few seconds of work each, so a task can be
    killed in its middle (the default sample's videos take well under a second)."""
    from shared.sample_data import make_sample_dataset

    root = tmp_path_factory.mktemp("long-videos")
    make_sample_dataset(root, reals_per_folder=3, fakes=2, seconds=60, fps=2)
    return root


class Cluster:
    """One test's cluster: its settings, its database and DATA_DIR as an operator would inspect them."""

    def __init__(self, tmp_path: Path, database_url: str, redis=None):
        self.data_dir = tmp_path / "data"
        self.log_dir = tmp_path
        self.database_url = database_url
        self.redis = redis  # None: embedded mode
        self.env = pipeline_env(DATA_DIR=self.data_dir, DATABASE_URL=database_url,
                                CELERY_BROKER_URL=redis.url if redis else None)
        self.engine = create_engine(database_url)

    def worker(self, **kwargs) -> CeleryWorker:
        kwargs.setdefault("concurrency", 2)
        return CeleryWorker(self.env, log_dir=self.log_dir, **kwargs)

    def query(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    def videos(self) -> dict:
        rows = self.query("SELECT id, rel_path, dataset_id, status, attempts, worker, started_at, finished_at "
                          "FROM videos ORDER BY id")
        return {row.rel_path: row for row in rows}

    def counts(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM videos GROUP BY status"))

    def ingest(self, dataset: Path, *args: str, expect_code: int = 0) -> dict:
        return run_cli_json(["ingest", str(dataset), *args], self.env, expect_code=expect_code)

    def running_on(self, worker: CeleryWorker, exclude=()):
        """(video row, pid) of a video that a child process of ``worker`` is working on now, or None."""
        children = set(worker.child_pids())
        for row in self.query("SELECT id, rel_path, dataset_id, attempts, worker FROM videos "
                              "WHERE status = 'running' ORDER BY id"):
            pid = (row.worker or "").rpartition(":")[2]
            if row.id not in exclude and pid.isdigit() and int(pid) in children:
                return row, int(pid)
        return None

    def crop_folder(self, row) -> Path:
        from workers.ingest import crop_dir_for

        return self.data_dir / crop_dir_for(row.dataset_id, row.rel_path)

    def check_one_set_of_crops(self) -> dict:
        """Duplicates, orphans (files no row names, temporary files included) and missing files."""
        duplicates = self.query(
            "SELECT count(*) FROM (SELECT video_id, frame_index, face_index FROM crops "
            "GROUP BY video_id, frame_index, face_index HAVING count(*) > 1) d")[0][0]
        named = {row.crop_path for row in self.query("SELECT crop_path FROM crops")}
        crops_dir = self.data_dir / "crops"
        # Each video's crops.pack is checked below against its rows, not counted as an orphan.
        on_disk = {p.relative_to(self.data_dir).as_posix() for p in crops_dir.rglob("*")
                   if p.is_file() and p.name != PACK_NAME} if crops_dir.is_dir() else set()
        per_video, wrong_packs = {}, []
        for rel_path, row in self.videos().items():
            folder = self.crop_folder(row)
            files = sorted(f for f in os.listdir(folder) if f != PACK_NAME) if folder.is_dir() else []
            names = sorted(r.crop_path.rsplit("/", 1)[1] for r in self.query(
                "SELECT crop_path FROM crops WHERE video_id = :v", v=row.id))
            per_video[rel_path] = (len(names), len(files))
            pack = folder / PACK_NAME
            if (sorted(read_pack(pack)[0]) if pack.exists() else []) != names:
                wrong_packs.append(rel_path)  # a pack must hold exactly the recorded crops (none: no pack)
        return {
            "crop_rows": len(named),
            "duplicates": duplicates,
            "orphans": sorted(on_disk - named),
            "missing": sorted(named - on_disk),
            "per_video": per_video,
            "wrong_packs": wrong_packs,
        }

    def assert_all_finished_once(self, expect_videos: int) -> dict:
        videos = self.videos()
        assert len(videos) == expect_videos
        assert {p: v.status for p, v in videos.items() if v.status not in FINISHED} == {}
        check = self.check_one_set_of_crops()
        assert check["duplicates"] == 0
        assert check["orphans"] == [] and check["missing"] == [] and check["wrong_packs"] == []
        for rel_path, (rows, files) in check["per_video"].items():
            assert rows == files, (rel_path, rows, files)
            assert (rows > 0) == (videos[rel_path].status == "done"), rel_path
        return check

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def cluster(tmp_path, pg_url, private_redis):
    c = Cluster(tmp_path, pg_url, private_redis)
    upgrade = run_cli(["db", "upgrade"], c.env)
    assert upgrade.returncode == 0, upgrade.stderr
    yield c
    c.close()


def seconds_since(moment: datetime, later: datetime | str | None) -> float | None:
    if later is None:
        return None
    if isinstance(later, str):  # SQLite hands back text
        later = datetime.fromisoformat(later)
    if later.tzinfo is None:
        later = later.replace(tzinfo=timezone.utc)
    return round((later - moment).total_seconds(), 2)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------------------------------ 1

def test_a_worker_child_killed_mid_video_is_redelivered_and_leaves_one_set_of_crops(
        long_videos, cluster, fault_report):
    """SIGKILL the prefork child running a video, twice: while it detects faces, and the moment it
    starts writing its PNGs. task_acks_late + task_reject_on_worker_lost put the message back;
    another child redoes the video; partial output of the dead child is replaced or removed."""
    started = time.monotonic()
    with cluster.worker(concurrency=2) as worker:
        queued = cluster.ingest(long_videos)
        assert queued["enqueued"] == LONG_VIDEOS

        # Kill 1: in the middle of detection (a running video whose crop folder is still empty).
        row1, pid1 = wait_until(lambda: cluster.running_on(worker), 60, 0.02, "a running video")
        files1 = os.listdir(cluster.crop_folder(row1)) if cluster.crop_folder(row1).is_dir() else []
        os.kill(pid1, signal.SIGKILL)
        killed1_at = now_utc()

        # Kill 2: another video's child, the moment the first file appears in its crop folder.
        def writing():
            found = cluster.running_on(worker, exclude={row1.id})
            if not found:
                return None
            row, pid = found
            folder = cluster.crop_folder(row)
            for _ in range(5000):  # ~5-10 s of polling every millisecond
                entries = os.listdir(folder) if folder.is_dir() else []
                if entries:
                    os.kill(pid, signal.SIGKILL)
                    return row, pid, entries, now_utc()
                time.sleep(0.001)
            return None

        row2, pid2, files2, killed2_at = wait_until(writing, 90, 0.02, "a video writing its crops")
        left2 = sorted(os.listdir(cluster.crop_folder(row2)))
        wait_until(lambda: not pid_alive(pid1) and not pid_alive(pid2), 10, 0.05, "the killed children to go")

        # The operator follows the run to its end: nothing needs re-enqueueing.
        waited = cluster.ingest(long_videos, "--wait")
        assert waited["enqueued"] == 0
        assert waited["status"]["videos"]["by_status"]["done"] == LONG_VIDEOS
        log = worker.log()
        # Celery saw both children die and requeued what they held; the pool replaced them.
        assert log.count("exited with 'signal 9 (SIGKILL)'") == 2, log[-3000:]
        assert "WorkerLostError" in log
        assert len(worker.child_pids()) == 2 and not {pid1, pid2} & set(worker.child_pids())

    check = cluster.assert_all_finished_once(LONG_VIDEOS)
    videos = cluster.videos()
    attempts = {p: v.attempts for p, v in videos.items()}
    assert files1 == []  # kill 1 really hit the detection phase
    assert attempts[row1.rel_path] == 2  # started, killed, started again by the redelivered message
    # Kill 2 hit the write phase: the video ran twice, unless it had already committed its crops.
    assert attempts[row2.rel_path] in (1, 2)
    assert sum(attempts.values()) - LONG_VIDEOS == 1 + (attempts[row2.rel_path] - 1)
    assert videos[row1.rel_path].worker.rpartition(":")[2] != str(pid1)  # finished by another process
    fault_report.update(
        videos=LONG_VIDEOS, kills=2, duplicates=check["duplicates"], orphans=len(check["orphans"]),
        missing=len(check["missing"]), crop_rows=check["crop_rows"], attempts=attempts,
        kill1_video=row1.rel_path, kill1_files_at_kill=len(files1),
        kill1_recovered_s=seconds_since(killed1_at, videos[row1.rel_path].finished_at),
        kill2_video=row2.rel_path, kill2_files_at_kill=len(files2), kill2_files_left=left2,
        kill2_recovered_s=seconds_since(killed2_at, videos[row2.rel_path].finished_at),
        total_s=round(time.monotonic() - started, 1),
    )


# ------------------------------------------------------------------------------------------ 2

def test_redis_stopped_and_restarted_during_an_ingest(long_videos, cluster, fault_report):
    """The broker goes away for a few seconds while videos are pending and running, then comes back
    with its append-only file. The worker reconnects by itself; `ingest --wait`, which follows the
    database, keeps running through the outage; every queued message survives and runs once."""
    started = time.monotonic()
    with cluster.worker(concurrency=2) as worker:
        follow = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "ingest", str(long_videos), "--wait", "--json"],
            env=cluster.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            def under_way():
                counts = cluster.counts()
                return counts if counts.get("running", 0) >= 1 and counts.get("pending", 0) >= 3 else None

            at_stop = wait_until(under_way, 120, 0.05, "videos running and pending")
            cluster.redis.stop()
            down_at = time.monotonic()
            time.sleep(5)
            assert follow.poll() is None, follow.communicate()  # the orchestrator survives the outage
            during = cluster.counts()
            cluster.redis.start()
            up_at = time.monotonic()
            client = cluster.redis.client()
            queued_after_restart = client.llen("cpu")
            client.close()
            assert queued_after_restart >= 1  # the queue came back from the append-only file

            out, err = follow.communicate(timeout=300)
            done_at = time.monotonic()
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
        assert follow.returncode == 0, err[-3000:]
        result = json.loads(out)
        log = worker.log()
    assert result["enqueued"] == LONG_VIDEOS
    assert result["status"]["videos"]["by_status"]["done"] == LONG_VIDEOS
    assert "Connection to broker lost" in log
    assert log.count("Connected to redis://") >= 2  # connected, lost, connected again

    check = cluster.assert_all_finished_once(LONG_VIDEOS)
    attempts = {p: v.attempts for p, v in cluster.videos().items()}
    # No message was lost (nobody enqueued again) and none ran twice.
    assert set(attempts.values()) == {1}
    fault_report.update(
        videos=LONG_VIDEOS, redis_restarts=1, outage_s=round(up_at - down_at, 1),
        at_stop=at_stop, during_outage=during, queued_after_restart=queued_after_restart,
        duplicates=check["duplicates"], orphans=len(check["orphans"]), crop_rows=check["crop_rows"],
        attempts_max=max(attempts.values()), back_to_all_done_s=round(done_at - up_at, 1),
        total_s=round(time.monotonic() - started, 1),
    )


# ------------------------------------------------------------------------------------------ 3

VISIBILITY_S = 20


@pytest.mark.slow  # waits out a visibility timeout: ~1-2 min
def test_a_killed_worker_restarted_gets_its_tasks_back_after_the_visibility_timeout(
        long_videos, cluster, fault_report):
    """SIGKILL a whole worker (parent and children, as a crashed machine) while it holds two
    videos, and start it again. Its unacknowledged messages stay in Redis' `unacked` hash: a worker
    only puts them back once they are older than the visibility timeout. By default that timeout is
    the video task's hard limit + 300 s (17 min; training is protected by its lease instead, see
    tests/test_lease_faults.py); here BROKER_VISIBILITY_TIMEOUT_S=20 (each video takes a few
    seconds) so the test sees them come back."""
    cluster.env["BROKER_VISIBILITY_TIMEOUT_S"] = str(VISIBILITY_S)
    started = time.monotonic()
    worker = cluster.worker(concurrency=2).start()
    try:
        cluster.ingest(long_videos)

        def both_busy():
            rows = [r for r in cluster.videos().values() if r.status == "running"]
            return rows if len(rows) == 2 else None

        held = wait_until(both_busy, 60, 0.05, "two running videos")
        worker.kill()
        killed_at = now_utc()
        client = cluster.redis.client()
        unacked = client.hlen("unacked")
        queued = client.llen("cpu")
        assert unacked == 2 and queued == LONG_VIDEOS - 2  # prefetch 1 per process: nothing else held

        worker.start()  # the machine is back
        restarted_s = round((now_utc() - killed_at).total_seconds(), 1)
        waited = cluster.ingest(long_videos, "--wait")
        assert waited["enqueued"] == 0  # nothing was re-enqueued: the messages came back by themselves
        assert client.hlen("unacked") == 0 and client.llen("cpu") == 0
        client.close()
    finally:
        worker.stop()

    check = cluster.assert_all_finished_once(LONG_VIDEOS)
    videos = cluster.videos()
    held_paths = {r.rel_path for r in held}
    attempts = {p: v.attempts for p, v in videos.items()}
    assert {p: a for p, a in attempts.items() if p in held_paths} == {p: 2 for p in held_paths}
    assert {a for p, a in attempts.items() if p not in held_paths} == {1}
    recovered = {p: seconds_since(killed_at, videos[p].finished_at) for p in held_paths}
    # They came back through the visibility timeout, not earlier (they were delivered just before
    # the kill), and not much later (workers look for them every tenth of the timeout).
    assert all(VISIBILITY_S / 2 <= s <= 4 * VISIBILITY_S for s in recovered.values()), recovered
    fault_report.update(
        videos=LONG_VIDEOS, worker_kills=1, worker_restarts=1, visibility_timeout_s=VISIBILITY_S,
        unacked_at_kill=unacked, queued_at_kill=queued, restart_ready_s=restarted_s,
        held_videos_recovered_s=recovered, duplicates=check["duplicates"], orphans=len(check["orphans"]),
        crop_rows=check["crop_rows"], attempts=attempts, total_s=round(time.monotonic() - started, 1),
    )


RESTORE_VISIBILITY_S = 15


def owns_local_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the TCP socket whose local port is ``port`` (from /proc)."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and f"socket:[{fields[9]}]" in sockets:
                return True
    return False


def unacked_tags(client, video_id: int) -> list[str]:
    """Delivery tags of the messages for ``video_id`` delivered and not yet acknowledged (kombu's
    `unacked` hash). A message handed out again gets a new tag."""
    tags = []
    for tag, raw in client.hgetall("unacked").items():
        message = json.loads(raw)[0]
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        if kwargs["video_id"] == video_id:
            tags.append(tag.decode())
    return tags


class RedisCommands:
    """Every command Redis executes, with Redis' own timestamp (MONITOR, in a thread): when a
    message went back is read from the server, not from a poll that a loaded machine delays."""

    def __init__(self, redis):
        import threading

        self.commands: list[tuple[float, str]] = []
        self._client, self._stop = redis.client(), threading.Event()
        self._thread = threading.Thread(target=self._record, daemon=True)

    def _record(self) -> None:
        with self._client.monitor() as monitor:
            while not self._stop.is_set():  # workers poll every second: next_command returns
                command = monitor.next_command()
                self.commands.append((command["time"], command["command"]))

    def __enter__(self) -> "RedisCommands":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def first(self, command: str) -> float | None:
        return next((at for at, seen in list(self.commands) if seen == command), None)


def kill_while_holding_the_restore_lock(cluster: Cluster, worker: CeleryWorker, timeout: float):
    """SIGKILL ``worker`` (parent and children) while its main process holds kombu's restore lock
    (`unacked_mutex`, taken for a few ms per sweep) and a child runs a video. MONITOR shows who
    sets the lock; CLIENT PAUSE WRITE then holds back its release while the test checks that
    the setter is this worker's main process, and kills it. Returns (video row, its message's
    delivery tag, kill time, the lock's remaining ms right after the kill)."""
    control = cluster.redis.client()
    deadline = time.monotonic() + timeout
    with cluster.redis.client().monitor() as monitor:
        while time.monotonic() < deadline:
            command = monitor.next_command()
            words = command["command"].split()
            if words[:2] != ["SET", "unacked_mutex"]:
                continue
            if time.time() - command["time"] > 0.05:
                continue  # read late (a loaded machine): that lock is gone, wait for a fresh one
            control.execute_command("CLIENT", "PAUSE", 5000, "WRITE")
            try:
                if control.get("unacked_mutex") != words[2].encode():
                    continue  # released already: the next one
                if not owns_local_port(worker.process.pid, int(command["client_port"])):
                    continue  # another worker's sweep
                running = cluster.running_on(worker)
                if running is None:
                    continue
                tags = unacked_tags(control, running[0].id)
                worker.kill()
                return running[0], tags, now_utc(), control.pttl("unacked_mutex")
            finally:
                control.execute_command("CLIENT", "UNPAUSE")
    raise AssertionError(f"worker never held the restore lock while running a video in {timeout} s")


@pytest.mark.slow  # three workers, two killed, a timeout waited out: ~1-2 min
def test_a_worker_killed_holding_the_restore_lock_delays_no_redelivery_past_timeout_plus_sweep(
        long_videos, cluster, fault_report):
    """Issue #19: a compose worker's video came back 299.4 s after `docker kill` with a 45 s
    visibility timeout. Every sweep for messages past the timeout runs under one Redis lock that
    expired after kombu's 300 s: a worker killed holding it stopped every other worker's sweeps.
    Three workers, two killed at two moments: (1) in the middle of its sweep, holding the lock and
    a video; (2) the moment a child starts a video (its message is fresh: the longest wait). The
    third works on. Each video is back on the queue within timeout + sweep, and done soon after."""
    from dataclasses import replace

    from shared.settings import load_settings

    sweep = replace(load_settings(), broker_visibility_timeout_s=RESTORE_VISIBILITY_S).redelivery_sweep_s
    bound = RESTORE_VISIBILITY_S + sweep
    cluster.env["BROKER_VISIBILITY_TIMEOUT_S"] = str(RESTORE_VISIBILITY_S)
    started = time.monotonic()
    workers = [cluster.worker(concurrency=1, name=name).start(wait=False) for name in ("survivor", "in-sweep", "at-start")]
    survivor, in_sweep, at_start = workers
    client = cluster.redis.client()

    try:
        for worker in workers:
            worker.wait_ready()
        cluster.ingest(long_videos)

        with RedisCommands(cluster.redis) as redis_commands:
            row1, tags1, killed1_at, lock_ms = kill_while_holding_the_restore_lock(cluster, in_sweep, 180)
            assert 0 < lock_ms <= sweep * 1000  # the dead worker's lock lasts one sweep, not 300 s
            first = wait_until(lambda: cluster.running_on(at_start, exclude={row1.id}), 60, 0.01, "a running video")
            row2, _pid = wait_until(lambda: cluster.running_on(at_start, exclude={row1.id, first[0].id}), 60, 0.005,
                                    "the next video on the second worker")
            tags2 = unacked_tags(client, row2.id)
            at_start.kill()
            killed2_at = now_utc()
            assert len(tags1) == len(tags2) == 1, (tags1, tags2)  # prefetch 1: the video's message only

            def back_times():
                # kombu puts a message back by removing its tag from `unacked` and pushing it on its queue.
                times = [redis_commands.first(f"HDEL unacked {tag}") for tag in (*tags1, *tags2)]
                return times if all(times) else None

            back = wait_until(back_times, bound + 20, 0.1, "the killed workers' messages back on the queue")
        waited = cluster.ingest(long_videos, "--wait")
        assert waited["enqueued"] == 0
        client.close()
    finally:
        for worker in workers:
            worker.stop()

    back_at = {row1.id: back[0] - killed1_at.timestamp(), row2.id: back[1] - killed2_at.timestamp()}
    videos = cluster.videos()
    kills = {name: {"video": row.rel_path, "back_on_queue_s": round(back_at[row.id], 2),
                    "done_s": seconds_since(at, videos[row.rel_path].finished_at)}
             for name, row, at in (("in_sweep", row1, killed1_at), ("at_video_start", row2, killed2_at))}
    for kill in kills.values():
        # Back within timeout + sweep (+ 3 s for a loaded machine's timers; kombu's 300 s lock
        # gave about 300 s); the first kill also waited for the dead worker's lock, which expires
        # within that sweep.
        assert 0 < kill["back_on_queue_s"] <= bound + 3, (kills, bound)
        assert kill["back_on_queue_s"] <= kill["done_s"]
    check = cluster.assert_all_finished_once(LONG_VIDEOS)
    attempts = {p: v.attempts for p, v in videos.items()}
    assert attempts[row1.rel_path] == 2 and attempts[row2.rel_path] == 2
    fault_report.update(
        videos=LONG_VIDEOS, worker_kills=2, visibility_timeout_s=RESTORE_VISIBILITY_S, sweep_s=sweep,
        lock_ms_after_kill_in_sweep=lock_ms, **kills, duplicates=check["duplicates"],
        orphans=len(check["orphans"]), attempts=attempts, total_s=round(time.monotonic() - started, 1),
    )


@pytest.mark.slow  # a Redis wiped under two workers: ~1-2 min
def test_videos_whose_messages_were_lost_are_enqueued_again_once_silent_past_the_time_limit(
        long_videos, cluster, fault_report):
    """Worst case: a worker dies with two videos and Redis restarts empty (no persistence, like the
    system Redis here): their messages and the queued ones are gone, the database still says
    running/pending. Re-running `orchestrator ingest` does not touch them while a worker might still
    be busy with them, and enqueues them again once they have been silent longer than a task may
    live (CPU_TASK_HARD_LIMIT_S + 60 s). Waiting 13 minutes is not a test: the timestamps are moved
    back by that much instead."""
    from shared.settings import load_settings

    stale_after_s = load_settings().cpu_task_hard_limit_s + 60
    started = time.monotonic()
    worker = cluster.worker(concurrency=2).start()
    try:
        cluster.ingest(long_videos)
        wait_until(lambda: cluster.counts().get("running", 0) >= 2, 60, 0.05, "two running videos")
        worker.kill()
        cluster.redis.stop()
        cluster.redis.wipe()
        cluster.redis.start()
        worker.start()
        stuck = {p: r.status for p, r in cluster.videos().items() if r.status not in FINISHED}
        assert len(stuck) >= LONG_VIDEOS - 2

        stuck_pending = sum(1 for status in stuck.values() if status == "pending")
        lost_found_from = time.monotonic()
        again = cluster.ingest(long_videos)
        assert again["enqueued"] == stuck_pending  # lost messages: sent again at once
        wait_until(lambda: cluster.counts().get("done", 0) == LONG_VIDEOS - 2, 120, 0.2, "the re-sent videos")
        pending_recovered_s = round(time.monotonic() - lost_found_from, 1)
        # The running ones are too recent: another worker could still be on them.
        stuck = {p: r.status for p, r in cluster.videos().items() if r.status not in FINISHED}
        assert set(stuck.values()) == {"running"} and len(stuck) == 2

        with cluster.engine.begin() as conn:  # ... 13 minutes later
            conn.execute(text(
                "UPDATE videos SET enqueued_at = enqueued_at - make_interval(secs => :s), "
                "started_at = started_at - make_interval(secs => :s) WHERE status IN ('pending', 'running')"),
                {"s": stale_after_s + 1})
        recovered_from = time.monotonic()
        waited = cluster.ingest(long_videos, "--wait")
        recovered_s = round(time.monotonic() - recovered_from, 1)
        assert waited["enqueued"] == len(stuck)
    finally:
        worker.stop()

    check = cluster.assert_all_finished_once(LONG_VIDEOS)
    attempts = {p: v.attempts for p, v in cluster.videos().items()}
    # Those killed while running ran twice, everything else once; nothing finished was redone.
    assert attempts == {p: 2 if stuck.get(p) == "running" else 1 for p in attempts}
    fault_report.update(
        videos=LONG_VIDEOS, worker_kills=1, redis_restarts_empty=1, stuck=len(stuck),
        pending_resent=stuck_pending, pending_resent_to_all_but_running_done_s=pending_recovered_s,
        stuck_running=sum(1 for s in stuck.values() if s == "running"), reenqueued=waited["enqueued"],
        stale_after_s=stale_after_s, recovery_after_reenqueue_s=recovered_s, duplicates=check["duplicates"],
        orphans=len(check["orphans"]), crop_rows=check["crop_rows"], attempts=attempts,
        total_s=round(time.monotonic() - started, 1),
    )


# ------------------------------------------------------------------------------------------ 4

def snapshot(cluster: Cluster) -> dict:
    """Everything a re-run must leave alone: crop rows and ids, video outcomes, files and their mtimes."""
    crops = cluster.query("SELECT id, video_id, frame_index, face_index, x, y, w, h, confidence, crop_path "
                          "FROM crops ORDER BY id")
    videos = cluster.query("SELECT id, rel_path, status, attempts, error, worker, started_at, finished_at "
                           "FROM videos ORDER BY id")
    files = {p.relative_to(cluster.data_dir).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
             for p in (cluster.data_dir / "crops").rglob("*") if p.is_file()}
    runs = cluster.query("SELECT id, status, finished_at FROM runs ORDER BY id")
    return {"crops": [tuple(r) for r in crops], "videos": [tuple(r) for r in videos], "files": files,
            "runs": [tuple(r) for r in runs]}


@pytest.mark.slow  # ingests and trains twice: ~1-2 min
def test_rerunning_ingest_on_a_finished_dataset_changes_nothing_and_trains_no_second_time(
        sample_root, cluster, fault_report):
    """`ingest --then-train` once (a real, small training run on queue gpu), then `ingest` and
    `ingest --then-train` again: same crop rows and ids, same files, same outcomes, no task sent,
    one training run."""
    started = time.monotonic()
    cpu = cluster.worker(concurrency=2, name="cpu").start(wait=False)
    gpu = cluster.worker(queues="gpu", concurrency=1, name="gpu", extra=["--max-tasks-per-child", "1"]).start(wait=False)
    try:
        cpu.wait_ready()
        gpu.wait_ready()
        first = cluster.ingest(sample_root, "--wait", *TRAIN, expect_code=1)  # 1: the corrupt video
        assert first["enqueued"] == 12
        assert first["training"]["started"] and first["training"]["report"]["status"] == "done"
        trained_s = round(time.monotonic() - started, 1)
        before = snapshot(cluster)
        assert len(before["runs"]) == 1 and before["files"]

        plain = cluster.ingest(sample_root, "--wait", expect_code=1)
        again = cluster.ingest(sample_root, "--wait", *TRAIN, expect_code=1)
        after = snapshot(cluster)
        client = cluster.redis.client()
        queued = {q: client.llen(q) for q in ("cpu", "gpu")}
        client.close()
        logs = cpu.log() + gpu.log()
    finally:
        cpu.stop()
        gpu.stop()

    for result in (plain, again):
        assert result["enqueued"] == 0 and result["new_videos"] == 0
    assert again["training"]["started"] is False and again["training"]["run_id"] == first["training"]["run_id"]
    assert after == before
    assert queued == {"cpu": 0, "gpu": 0}
    # Each video's task and the training task were received once: the re-runs sent nothing.
    assert len(re.findall(r"Task ingest\.process_video\[[-0-9a-f]+\] received", logs)) == 12
    assert len(re.findall(r"Task train\.fit\[[-0-9a-f]+\] received", logs)) == 1
    ingests = cluster.query("SELECT count(*), count(train_run_id) FROM ingests")[0]
    assert tuple(ingests) == (3, 1)
    check = cluster.check_one_set_of_crops()
    fault_report.update(
        videos=12, reruns=2, runs=len(after["runs"]), crop_rows=len(after["crops"]), files=len(after["files"]),
        duplicates=check["duplicates"], orphans=len(check["orphans"]), changed=after != before,
        first_ingest_and_training_s=trained_s, total_s=round(time.monotonic() - started, 1),
    )


# ------------------------------------------------------------------------------------------ 5

def test_embedded_mode_a_killed_local_worker_child_is_made_up_for(long_videos, tmp_path, fault_report):
    """No broker configured: `orchestrator ingest` runs its own `celery worker` on kombu's filesystem
    transport. SIGKILL the child working on a video: the run still completes with one set of crops."""
    data_dir = tmp_path / "data"
    embedded = Cluster(tmp_path, f"sqlite:///{data_dir / 'pipeline.db'}")
    env = pipeline_env(DATA_DIR=data_dir)  # no DATABASE_URL, no broker: the embedded default
    started = time.monotonic()
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "ingest", str(long_videos), "--workers", "2", "--json"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def running():
            if not (data_dir / "pipeline.db").exists():
                return None
            try:
                rows = embedded.query("SELECT rel_path, worker FROM videos WHERE status = 'running' ORDER BY id")
            except Exception:  # the schema is still being created
                return None
            return next((row for row in rows if row.worker), None)

        victim = wait_until(running, 120, 0.05, "a running video")
        pid = int(victim.worker.rpartition(":")[2])
        os.kill(pid, signal.SIGKILL)
        killed_at = now_utc()
        out, err = orchestrator.communicate(timeout=300)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.wait()
    assert orchestrator.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["mode"] == "embedded"
    assert result["status"]["videos"]["by_status"]["done"] == LONG_VIDEOS

    try:
        check = embedded.assert_all_finished_once(LONG_VIDEOS)
        videos = embedded.videos()
    finally:
        embedded.close()
    attempts = {p: v.attempts for p, v in videos.items()}
    assert attempts[victim.rel_path] >= 2
    assert {a for p, a in attempts.items() if p != victim.rel_path} == {1}
    log = (data_dir / "logs" / "worker-ingest.log").read_text()
    assert "signal 9 (SIGKILL)" in log
    fault_report.update(
        videos=LONG_VIDEOS, kills=1, killed_video=victim.rel_path, attempts_of_killed=attempts[victim.rel_path],
        recovered_s=seconds_since(killed_at, videos[victim.rel_path].finished_at),
        duplicates=check["duplicates"], orphans=len(check["orphans"]), crop_rows=check["crop_rows"],
        total_s=round(time.monotonic() - started, 1),
    )
