"""Running the real programs from tests: the `orchestrator` CLI and `celery worker` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPELINE_ENV = ("DATA_DIR", "DATABASE_URL", "CELERY_BROKER_URL")


def pipeline_env(**values: str | Path | None) -> dict[str, str]:
    """This process's environment without pipeline settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if k not in PIPELINE_ENV}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update({k: str(v) for k, v in values.items() if v is not None})
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def run_cli_json(args: list[str], env: dict[str, str], expect_code: int = 0, timeout: float = 600):
    result = run_cli([*args, "--json"], env, timeout)
    assert result.returncode == expect_code, (result.returncode, result.stdout[-2000:], result.stderr[-4000:])
    return json.loads(result.stdout)


class CeleryWorker:
    """A real `celery -A workers worker` subprocess, as an operator would start it."""

    def __init__(self, env: dict[str, str], queues: str = "cpu", concurrency: int = 2, name: str = "test",
                 log_dir: Path | None = None, extra: list[str] | None = None):
        self.env, self.queues, self.concurrency, self.name = env, queues, concurrency, name
        self.log_path = (log_dir or Path(env.get("DATA_DIR", "."))) / f"celery-{name}.log"
        self.extra = extra or []
        self.process: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 120) -> "CeleryWorker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", self.queues,
             "-c", str(self.concurrency), "-n", f"{self.name}@%h", "--loglevel", "INFO", *self.extra],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-3000:]}")
            if " ready." in self.log():
                return self
            time.sleep(0.3)
        raise RuntimeError(f"worker not ready in {ready_timeout} s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self, timeout: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """Kill the whole worker (parent and children) at once, as a crashed machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> "CeleryWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
