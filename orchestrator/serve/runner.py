"""Starting the server: the checks before it binds, and in embedded mode the local `predict` workers
it holds for its lifetime (with the sweep that sends again what a dead local worker held)."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager

from shared.errors import InputError
from shared.settings import get_settings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SWEEP_S = 2.0


def check_and_configure(host: str, run_id: str | None, no_auth: bool):
    """The ServeConfig, or InputError before anything listens."""
    from orchestrator.database import open_database
    from orchestrator.jobs import finished_run
    from orchestrator.serve.app import ServeConfig
    from orchestrator.serve.keys import active_key_count
    from workers.planning.judgements import judging_model

    if no_auth and host not in LOCAL_HOSTS:
        raise InputError(f"--no-auth serves anyone who can reach the port: only on 127.0.0.1, not {host}")
    open_database()
    if not no_auth and active_key_count() == 0:
        raise InputError("no API key: create one with `orchestrator api-key create NAME` "
                         "(or pass --no-auth to serve this machine alone)")
    run = finished_run(run_id, "judge videos")
    return ServeConfig(run_id=run.id, model=judging_model(run), no_auth=no_auth)


def embedded_workers(concurrency: int):
    """A lifespan that holds local predict workers in embedded mode (none with a broker configured)."""

    @asynccontextmanager
    async def lifespan(_app):
        if not get_settings().embedded:
            yield
            return
        from orchestrator.embedded import LocalWorker, ensure_broker_dirs
        from workers.planning.judgements import dispatch_judgement, orphaned_judgements, queued_judgements

        ensure_broker_dirs()
        worker = LocalWorker("predict", concurrency, "serve").start()
        # The filesystem broker forgets nothing, but the judgements queued when an earlier server
        # stopped may have had their messages taken by its workers: send them again (claims make a
        # second message harmless).
        for judgement_id, name in queued_judgements():
            dispatch_judgement(judgement_id, name)
        stop = threading.Event()

        def sweep():
            while not stop.wait(SWEEP_S):
                try:
                    for judgement_id, name in orphaned_judgements():
                        dispatch_judgement(judgement_id, name)
                except Exception:  # noqa: BLE001 - the next sweep tries again
                    continue

        thread = threading.Thread(target=sweep, name="judgement-sweep", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            worker.stop(timeout_s=10)

    return lifespan
