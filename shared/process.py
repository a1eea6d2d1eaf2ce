"""Who did a piece of work: this process's name (``host:pid``) and whether a named process still runs.

A video being processed records the name of the process holding it; a temporary PNG carries it in
its file name. Both are checked here, and only here, when work is found abandoned.
"""

from __future__ import annotations

import os
import socket


def process_name(pid: int | None = None) -> str:
    """``host:pid`` of this process (or of ``pid`` on this host)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def parse_process_name(name: str | None) -> tuple[str, int | None]:
    """``host:pid`` -> (host, pid); pid None when the name holds none."""
    host, _, pid = (name or "").rpartition(":")
    return host, int(pid) if pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    """True when a process with this pid runs on this host (or may: it belongs to someone else).
    A zombie does not run: a worker's pool child killed with its parent stays one until init reaps
    it, and its lease must be free at once all the same."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return False  # no /proc (not Linux), or gone since
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def gone_from_this_host(host: str, pid: int | None) -> bool:
    """True when (host, pid) names a process of this host that no longer runs. A process on
    another host cannot be checked from here: False."""
    return host == socket.gethostname() and pid is not None and not pid_alive(pid)


# Embedded mode: each command has its own queues (`gpu-<pid of the command>`), named by the command
# before it first sends or consumes (``use_own_queues``) and inherited by its local workers, so what a
# command sends only its own workers take. Two commands on one DATA_DIR once shared `gpu`: the first
# one's worker took the second's run, then stopped, and the message was gone with it.
COMMAND_QUEUES_ENV = "PIPELINE_COMMAND_QUEUES"


def use_own_queues() -> None:
    """This command (never a worker: its workers inherit the name) sends to and consumes its queues."""
    os.environ[COMMAND_QUEUES_ENV] = str(os.getpid())


def command_queue(queue: str) -> str:
    """``queue`` as this process sends to and consumes it: the command's own in embedded mode."""
    from shared.settings import get_settings

    command = os.environ.get(COMMAND_QUEUES_ENV)
    return f"{queue}-{command}" if command and get_settings().embedded else queue
