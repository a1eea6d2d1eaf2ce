"""Waiting for work recorded in the database to finish: one polling loop for videos and runs."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from db.session import call_with_db_retry

State = TypeVar("State")


def poll_until(read: Callable[[], State], finished: Callable[[State], bool], *,
               on_tick: Callable[[State], None] | None = None, check: Callable[[], None] | None = None,
               on_db_retry: Callable[[Exception], None] | None = None, poll_s: float = 1.0,
               timeout_s: float | None = None) -> State:
    """Read the state every ``poll_s`` until ``finished(state)``; return that state.

    ``on_tick(state)`` sees every reading (progress bars); ``check()`` runs between readings and
    may raise (a local worker died); ``on_db_retry(exc)`` is told while the database is
    unreachable (the wait rides out a restart of up to 5 minutes). TimeoutError after ``timeout_s``.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        state = call_with_db_retry(read, on_retry=on_db_retry)
        if on_tick:
            on_tick(state)
        if finished(state):
            return state
        if check:
            check()
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout_s} s")
        time.sleep(poll_s)
