"""A training run's lease in the database: one holder at a time, heartbeats, take-back, resume.

Why a lease and not the broker: with Redis, a message comes back to another worker only after the
broker's visibility timeout, and kombu has one such timeout per connection, for every queue. Sized
for a training run (hours), it made a dead CPU host's videos wait 6 h 20 min. So the training task
is acknowledged on receipt (``acks_late=False``, workers/tasks.py) and protected here instead:

- the task *claims* the run with one conditional ``UPDATE`` (queued, or running with a lease older
  than ``TRAIN_LEASE_S``, and fewer than ``TRAIN_MAX_ATTEMPTS`` starts): two deliveries of the same
  run never train at once;
- while it trains, a thread renews ``runs.heartbeat_at`` every ``TRAIN_HEARTBEAT_S``; a holder that
  finds the lease taken from it stops at the next batch (``LeaseLost``) and records nothing;
- every GPU worker looks for runs whose lease expired (``take_back_expired_runs``, called by the
  ``LeaseSweep`` bootstep in workers/lifecycle.py) and puts them back on the queue, or marks them
  failed after ``TRAIN_MAX_ATTEMPTS`` starts;
  `orchestrator train --resume RUN` does the same for one run;
- a holder on *this* host whose process no longer exists (Ctrl-C on an embedded `train`) has left
  for good: its lease is taken back at once instead of after ``TRAIN_LEASE_S`` (``_holder_gone``);
- Keras's ``BackupAndRestore`` writes the weights and the epoch number at the end of every epoch
  (``DATA_DIR/runs/<run>/checkpoint/``): the next holder starts from the last finished epoch.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import or_, select, update

from db.models import Run, utcnow
from db.session import session_scope
from shared.errors import InputError
from shared.labels import RUN_DONE, RUN_FAILED, RUN_QUEUED, RUN_RUNNING
from shared.process import gone_from_this_host, parse_process_name, process_name
from shared.settings import get_settings

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"


class LeaseLost(RuntimeError):
    """Another worker took the run back (this one stopped renewing its lease in time)."""


@dataclass
class Claim:
    """The answer to "may this process train the run now?"."""

    granted: bool
    status: str  # the run's status after the claim
    attempts: int = 0
    config: dict | None = None
    split: dict | None = None
    reason: str = ""
    created_at: object = None


def _expired(now):
    stale = now - timedelta(seconds=get_settings().train_lease_s)
    return (Run.status == RUN_RUNNING) & or_(Run.heartbeat_at.is_(None), Run.heartbeat_at < stale)


def _holder_gone(worker: str | None) -> bool:
    """True when the lease's holder is a process of this host that no longer runs."""
    return gone_from_this_host(*parse_process_name(worker))


def _free(session, now):
    """SQL condition: the run's lease may be taken (expired, or held by a process of this host
    that is gone; the holder's name is part of the condition, so a new holder is never displaced)."""
    dead = [worker for (worker,) in session.execute(
        select(Run.worker).where(Run.status == RUN_RUNNING, Run.worker.is_not(None)).distinct())
        if _holder_gone(worker)]
    if not dead:
        return _expired(now)
    return or_(_expired(now), (Run.status == RUN_RUNNING) & Run.worker.in_(dead))


def claim_run(run_id: str, holder: str | None = None) -> Claim:
    """Take the run's lease if it is free (queued, or its holder went silent) and attempts remain."""
    settings = get_settings()
    holder = holder or process_name()
    now = utcnow()
    with session_scope() as session:
        row = session.execute(
            update(Run)
            .where(Run.id == run_id, Run.attempts < settings.train_max_attempts,
                   or_(Run.status == RUN_QUEUED, _free(session, now)))
            .values(status=RUN_RUNNING, attempts=Run.attempts + 1, heartbeat_at=now, worker=holder,
                    started_at=now, error=None, progress=None)
            .returning(Run.attempts, Run.config, Run.split, Run.created_at)
        ).first()
        if row is not None:
            return Claim(True, RUN_RUNNING, row.attempts, dict(row.config), dict(row.split or {}),
                         created_at=row.created_at)
        run = session.get(Run, run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        if _held(run, now):
            return Claim(False, run.status, run.attempts, reason=f"held by {run.worker}")
        if run.status in (RUN_QUEUED, RUN_RUNNING):  # free, but no attempt left
            give_up(session, run_id, run.attempts)
            return Claim(False, RUN_FAILED, run.attempts, reason="no attempt left")
        return Claim(False, run.status, run.attempts, reason=f"already {run.status}")


def _age_s(run: Run, now) -> float:
    """Seconds since the run's last heartbeat."""
    beat = run.heartbeat_at
    if beat.tzinfo is None:  # SQLite hands back naive UTC
        beat = beat.replace(tzinfo=timezone.utc)
    return (now - beat).total_seconds()


def _is_expired(run: Run, now) -> bool:
    return _age_s(run, now) > get_settings().train_lease_s


def abandoned_run(run_id: str) -> str | None:
    """The holder's name when the run is ``running`` under a process of this host that no longer
    runs: the task ended (or died) without recording an outcome, e.g. on a full disk (None otherwise)."""
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is not None and run.status == RUN_RUNNING and _holder_gone(run.worker):
            return run.worker
    return None


def _held(run: Run, now) -> bool:
    """The run is running under a live lease."""
    return (run.status == RUN_RUNNING and run.heartbeat_at is not None and not _is_expired(run, now)
            and not _holder_gone(run.worker))


def give_up(session, run_id: str, attempts: int) -> None:
    session.execute(update(Run).where(Run.id == run_id, Run.status.in_([RUN_QUEUED, RUN_RUNNING])).values(
        status=RUN_FAILED, finished_at=utcnow(),
        error=f"gave up after {attempts} attempts (TRAIN_MAX_ATTEMPTS): each holder stopped renewing its lease"))


class Heartbeat:
    """Renews the run's lease from a thread while the block runs; ``check()`` raises LeaseLost once
    the lease belongs to someone else."""

    def __init__(self, run_id: str, holder: str | None = None, interval_s: float | None = None):
        self.run_id, self.holder = run_id, holder or process_name()
        self.interval_s = interval_s if interval_s is not None else get_settings().train_heartbeat_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{run_id}", daemon=True)

    def beat(self) -> bool:
        """Renew once; False when the lease is no longer ours."""
        with session_scope() as session:
            renewed = session.execute(
                update(Run).where(Run.id == self.run_id, Run.worker == self.holder, Run.status == RUN_RUNNING)
                .values(heartbeat_at=utcnow())
            ).rowcount
        self.lost = self.lost or renewed == 0
        return not self.lost

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self.beat():
                    log.warning("run %s: lease taken by another worker; stopping", self.run_id)
                    return
            except Exception as exc:  # a database blink: the next beat tries again
                log.warning("run %s: heartbeat failed: %s", self.run_id, exc)

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"run {self.run_id}: another worker took the run back")

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_dir(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR


def checkpoint_epoch(out_dir: Path) -> int:
    """Epochs finished by an earlier holder, as the last checkpoint says (0: none)."""
    meta = checkpoint_dir(out_dir) / "training_metadata.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def training_callbacks(out_dir: Path, lease: Heartbeat) -> list:
    """Keras callbacks: an epoch checkpoint that a later holder resumes from, and a stop at the next
    batch once the lease is lost. Kept after training (``remove_checkpoint`` once recorded), so a
    holder that dies during evaluation does not make the next one train again from scratch."""
    import keras

    class StopWhenLeaseLost(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            lease.check()

    return [keras.callbacks.BackupAndRestore(str(checkpoint_dir(out_dir)), delete_checkpoint=False),
            StopWhenLeaseLost()]


def remove_checkpoint(out_dir: Path) -> None:
    shutil.rmtree(checkpoint_dir(out_dir), ignore_errors=True)


# ----------------------------------------------------------------------------- taking runs back

def take_back_expired_runs(send: Callable[[str, dict], object]) -> list[str]:
    """Runs whose holder went silent: back on the queue (``send(run_id, config)``), or failed once
    they used every attempt. Safe when every GPU worker does it at once: one UPDATE decides."""
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        free = _free(session, now)
        spent = session.execute(
            select(Run.id, Run.attempts).where(free, Run.attempts >= settings.train_max_attempts)
        ).all()
        for run_id, attempts in spent:
            give_up(session, run_id, attempts)
        taken = session.execute(
            update(Run).where(free, Run.attempts < settings.train_max_attempts)
            .values(status=RUN_QUEUED, worker=None).returning(Run.id, Run.config)
        ).all()
    for run_id, config in taken:
        log.warning("run %s: its worker stopped renewing its lease; sent to the gpu queue again", run_id)
        send(run_id, config)
    return [run_id for run_id, _ in taken]


def take_back_run(run_id: str, send: Callable[[str, dict], object]) -> str:
    """`orchestrator train --resume RUN`: send a queued run, or a running one whose lease expired,
    to the queue again. InputError when the run is held, finished or unknown."""
    now = utcnow()
    with session_scope() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise InputError(f"no run {run_id!r}: `orchestrator runs` lists them")
        if run.status == RUN_DONE:
            raise InputError(f"run {run_id} is already done")
        if run.status == RUN_FAILED:
            raise InputError(f"run {run_id} failed ({run.error}): start a new run")
        if _held(run, now):
            raise InputError(f"run {run_id} is held by {run.worker} (heartbeat {_age_s(run, now):.0f} s ago, "
                             f"lease {get_settings().train_lease_s:.0f} s): not taken back")
        if run.attempts >= get_settings().train_max_attempts:
            give_up(session, run_id, run.attempts)
            raise InputError(f"run {run_id} used its {run.attempts} attempts: marked failed")
        run.status, run.worker = RUN_QUEUED, None
        config = dict(run.config)
    send(run_id, config)
    return run_id
