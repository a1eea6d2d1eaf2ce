"""Issue 19's "nothing stuck" defects: leases of processes that are gone, refused model files,
explanation sheets that must not overwrite, training on a dataset still being ingested."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shared.errors import InputError
from shared.process import process_name
from tests.test_lease import add_run, run_row
from workers.training import lease as leases


def dead_pid() -> int:
    """The pid of a real process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_whose_holder_process_is_gone_is_taken_back_at_once(local_db):
    """Ctrl-C on `train`, then `train --resume`: the holder's process is gone, its 14 s old
    heartbeat does not hold the run for the rest of the 300 s lease."""
    gone = process_name(dead_pid())
    add_run("gone", status="running", attempts=1, heartbeat_age_s=14, worker=gone)
    add_run("alive", status="running", attempts=1, heartbeat_age_s=14, worker=process_name())
    add_run("elsewhere", status="running", attempts=1, heartbeat_age_s=14, worker="another-host:1")
    for run_id, holder in (("alive", process_name()), ("elsewhere", "another-host:1")):
        with pytest.raises(InputError, match=f"held by {holder}"):
            leases.take_back_run(run_id, lambda *a: None)
        assert not leases.claim_run(run_id, holder="b:2").granted
    sent = []
    leases.take_back_run("gone", lambda run_id, config: sent.append(run_id))
    assert sent == ["gone"] and run_row("gone").status == "queued" and run_row("gone").worker is None
    claim = leases.claim_run("gone", holder="b:2")
    assert claim.granted and claim.attempts == 2


def test_the_sweep_and_a_claim_take_a_gone_holders_run(local_db):
    add_run("swept", status="running", attempts=1, heartbeat_age_s=1, worker=process_name(dead_pid()))
    add_run("claimed", status="running", attempts=1, heartbeat_age_s=1, worker=process_name(dead_pid()))
    add_run("alive", status="running", attempts=1, heartbeat_age_s=1, worker=process_name())
    assert leases.claim_run("claimed", holder="b:2").granted
    assert leases.take_back_expired_runs(lambda *a: None) == ["swept"]
    assert run_row("alive").status == "running" and run_row("claimed").worker == "b:2"
