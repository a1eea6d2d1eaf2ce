"""The training run's lease (workers/training/lease.py), on a real SQLite database, no worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from db.models import Run, utcnow
from db.session import session_scope
from shared.errors import InputError
from workers.training import lease as leases


def add_run(run_id="r1", status="queued", attempts=0, heartbeat_age_s=None, worker=None):
    beat = None if heartbeat_age_s is None else utcnow() - timedelta(seconds=heartbeat_age_s)
    with session_scope() as session:
        session.add(Run(id=run_id, status=status, config={"backbone": "x", "split": "video", "epochs": 1},
                        attempts=attempts, heartbeat_at=beat, worker=worker))
    return run_id


def run_row(run_id="r1") -> Run:
    with session_scope() as session:
        run = session.get(Run, run_id)
        session.expunge(run)
        return run


def test_a_queued_run_is_claimed_once(local_db):
    add_run()
    first = leases.claim_run("r1", holder="a:1")
    second = leases.claim_run("r1", holder="b:2")
    assert first.granted and first.attempts == 1
    assert not second.granted and second.reason == "held by a:1"
    assert run_row().worker == "a:1" and run_row().status == "running"


def test_an_expired_lease_is_taken_and_the_old_holder_learns_it(local_db, monkeypatch):
    add_run(status="running", attempts=1, heartbeat_age_s=1000, worker="a:1")
    old = leases.Heartbeat("r1", holder="a:1", interval_s=60)
    claim = leases.claim_run("r1", holder="b:2")
    assert claim.granted and claim.attempts == 2
    assert old.beat() is False
    with pytest.raises(leases.LeaseLost):
        old.check()
    assert leases.Heartbeat("r1", holder="b:2").beat() is True


def test_a_run_is_failed_after_max_attempts(local_db):
    add_run(status="running", attempts=3, heartbeat_age_s=1000, worker="a:1")
    claim = leases.claim_run("r1", holder="b:2")
    assert not claim.granted and claim.status == "failed"
    assert run_row().status == "failed" and "3 attempts" in run_row().error


def test_the_sweep_requeues_expired_runs_once_and_fails_spent_ones(local_db):
    add_run("fresh", status="running", attempts=1, heartbeat_age_s=1, worker="a:1")
    add_run("stale", status="running", attempts=1, heartbeat_age_s=1000, worker="a:2")
    add_run("spent", status="running", attempts=3, heartbeat_age_s=1000, worker="a:3")
    sent = []
    assert leases.take_back_expired_runs(lambda run_id, config: sent.append(run_id)) == ["stale"]
    assert leases.take_back_expired_runs(lambda run_id, config: sent.append(run_id)) == []  # a second sweeper
    assert sent == ["stale"]
    assert [run_row(r).status for r in ("fresh", "stale", "spent")] == ["running", "queued", "failed"]


def test_resume_refuses_a_held_or_finished_run_and_takes_an_expired_one(local_db):
    add_run("held", status="running", attempts=1, heartbeat_age_s=1, worker="a:1")
    add_run("done", status="done")
    add_run("stale", status="running", attempts=1, heartbeat_age_s=1000, worker="a:2")
    for run_id, words in (("held", "held by a:1"), ("done", "already done"), ("nope", "no run")):
        with pytest.raises(InputError, match=words):
            leases.take_back_run(run_id, lambda *a: None)
    sent = []
    leases.take_back_run("stale", lambda run_id, config: sent.append(run_id))
    assert sent == ["stale"] and run_row("stale").status == "queued"


def test_checkpoint_epoch_reads_what_backup_and_restore_writes(tmp_path):
    assert leases.checkpoint_epoch(tmp_path) == 0
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    assert leases.checkpoint_epoch(tmp_path) == 2
    leases.remove_checkpoint(tmp_path)
    assert leases.checkpoint_epoch(tmp_path) == 0


def test_a_dead_workers_restore_lock_expires_within_one_sweep():
    """kombu sweeps for messages past the visibility timeout under one Redis lock; a worker killed
    holding it blocked every sweep for kombu's 300 s (issue #19). It now lasts one sweep (at most
    a tenth of the timeout, 1 s at least), so a dead worker's message is back within timeout + sweep
    (tests/test_faults.py kills a worker holding it)."""
    from dataclasses import replace

    from shared.settings import load_settings
    from workers.celery_app import broker_transport_options

    for visibility in (1, 5, 10, 45, 120, 1020, 5000):
        settings = replace(load_settings(), broker_url="redis://", embedded=False,
                           broker_visibility_timeout_s=visibility)
        options = broker_transport_options(settings)
        period = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
        assert options["visibility_timeout"] == visibility
        assert period <= options["unacked_mutex_expire"] == settings.redelivery_sweep_s <= max(1, visibility // 10)


def test_settings_defaults_and_cpu_visibility(monkeypatch):
    from shared.settings import load_settings

    for name in ("BROKER_VISIBILITY_TIMEOUT_S", "CPU_TASK_HARD_LIMIT_S", "TRAIN_LEASE_S"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.train_heartbeat_s, settings.train_lease_s, settings.train_max_attempts) == (30, 300, 3)
    assert settings.visibility_timeout_s == settings.cpu_task_hard_limit_s + 300 <= 20 * 60


def test_a_zombie_holder_is_gone_and_a_running_one_is_not():
    """A worker's pool child killed with its parent is a zombie until init reaps it: its run's
    lease must be free at once (`train --resume` after Ctrl-C), as for a process that is gone."""
    import os
    import signal
    import socket
    import subprocess
    import time

    from shared.process import gone_from_this_host, pid_alive

    child = subprocess.Popen(["sleep", "60"])
    try:
        assert pid_alive(child.pid) and not gone_from_this_host(socket.gethostname(), child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] == "Z":
            time.sleep(0.01)
        os.kill(child.pid, 0)  # not reaped yet: the pid still answers
        assert not pid_alive(child.pid) and gone_from_this_host(socket.gethostname(), child.pid)
    finally:
        child.kill()
        child.wait()
