"""`orchestrator serve` as a subprocess on a free port of 127.0.0.1, as a user starts it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import REPO, free_port


class Server:
    def __init__(self, env: dict[str, str], log_dir: Path, args: list[str] | None = None):
        self.env, self.args = env, args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"serve-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240, healthy: bool = True) -> "Server":
        """Start; return once /healthz answers (200 with ``healthy``: a predict worker answers too)."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(self.port), *self.args],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                answer = httpx.get(f"{self.url}/healthz", timeout=10)
                if answer.status_code == 200 or (not healthy and answer.status_code == 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"serve not healthy in {timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self, timeout: float = 30) -> None:
        from orchestrator.embedded import stop_process_group

        stop_process_group(self.process, timeout)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def upload(client: httpx.Client, path: Path, **params) -> httpx.Response:
    with open(path, "rb") as handle:
        return client.post("/v1/judgements", params=params, files={"video": (path.name, handle, "video/mp4")})


def wait_finished(data_dir: Path, ids: list[str], database_url: str | None = None, timeout: float = 240) -> dict:
    """{id: status} once every judgement has finished (read from the database, not the API: the
    API's rate limit is part of what is tested)."""
    from tests.judging_support import pipeline_settings
    from workers.planning.judgements import JUDGEMENT_FINISHED, judgement_states

    deadline = time.monotonic() + timeout
    with pipeline_settings(DATA_DIR=data_dir, DATABASE_URL=database_url):
        while True:
            states = judgement_states(ids)
            if len(states) == len(ids) and all(s in JUDGEMENT_FINISHED for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"judgements not finished in {timeout} s: {states}")
            time.sleep(0.2)
