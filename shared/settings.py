"""Every setting of the pipeline, read from the environment in one place.

Defaults work on a laptop with nothing configured (the *embedded* mode: a SQLite file and
a filesystem broker under ``DATA_DIR``, Celery workers started by the orchestrator itself).
Setting ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to the distributed mode; the
values for a cluster live in ``docker-compose.yml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _float(name: str, default: float) -> float:
    return float(_env(name, str(default)))


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    embedded: bool  # True when no broker was configured: the orchestrator runs its own workers

    # Ingest defaults (overridable per run on the command line).
    sample_every_s: float = 3.0
    min_confidence: float = 0.95
    crop_margin: float = 0.3
    crop_size: int = 128
    # MTCNN runs on a copy of the frame whose longer side is at most this many pixels;
    # boxes are scaled back. Full-resolution detection costs 2-5x more and finds the same faces.
    detect_max_side: int = 480
    # Sampled frames of one video are detected in one batched call, this many at a time.
    detect_batch: int = 8
    # TensorFlow/OpenCV threads per worker process (0: the libraries decide). A CPU worker runs
    # one process per core, so one thread each; more would make the processes fight for cores.
    worker_threads: int = 1

    # Celery worker behaviour. Why each value: see workers/celery_app.py.
    cpu_task_soft_limit_s: int = 600
    cpu_task_hard_limit_s: int = 720
    gpu_task_soft_limit_s: int = 6 * 3600
    gpu_task_hard_limit_s: int = 6 * 3600 + 600
    # Redis hands a task's message to another worker when it has not been acknowledged this many
    # seconds after delivery: that is how the tasks of a worker that died (SIGKILL, lost machine)
    # come back. 0: the longest hard time limit + 600 s. A value under a task's run time makes
    # Redis start that task again while it still runs.
    broker_visibility_timeout_s: int = 0
    db_pool_size: int = 2
    db_max_overflow: int = 2

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def visibility_timeout_s(self) -> int:
        if self.broker_visibility_timeout_s > 0:
            return self.broker_visibility_timeout_s
        return max(self.cpu_task_hard_limit_s, self.gpu_task_hard_limit_s) + 600


def mask_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host`` URLs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR", "./data")).expanduser().resolve()
    broker = _env("CELERY_BROKER_URL")
    embedded = broker is None
    if embedded:
        broker = "filesystem://"
    database_url = _env("DATABASE_URL", f"sqlite:///{data_dir / 'pipeline.db'}")
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=broker,
        embedded=embedded,
        sample_every_s=_float("SAMPLE_EVERY_S", 3.0),
        min_confidence=_float("MIN_CONFIDENCE", 0.95),
        crop_margin=_float("CROP_MARGIN", 0.3),
        crop_size=_int("CROP_SIZE", 128),
        detect_max_side=_int("DETECT_MAX_SIDE", 480),
        detect_batch=_int("DETECT_BATCH", 8),
        worker_threads=_int("WORKER_THREADS", 1),
        cpu_task_soft_limit_s=_int("CPU_TASK_SOFT_LIMIT_S", 600),
        cpu_task_hard_limit_s=_int("CPU_TASK_HARD_LIMIT_S", 720),
        gpu_task_soft_limit_s=_int("GPU_TASK_SOFT_LIMIT_S", 6 * 3600),
        gpu_task_hard_limit_s=_int("GPU_TASK_HARD_LIMIT_S", 6 * 3600 + 600),
        broker_visibility_timeout_s=_int("BROKER_VISIBILITY_TIMEOUT_S", 0),
        db_pool_size=_int("DB_POOL_SIZE", 2),
        db_max_overflow=_int("DB_MAX_OVERFLOW", 2),
    )


_cached: Settings | None = None


def get_settings() -> Settings:
    """Settings of this process, read once. Tests call ``reset_settings()`` after changing env."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached


def reset_settings() -> None:
    global _cached
    _cached = None
