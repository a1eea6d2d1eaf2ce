"""Every setting of the pipeline, read from the environment in one place.

Each tunable is a field of ``Settings`` with its default written once; its environment
variable is the field's name in capitals (``sample_every_s`` <- ``SAMPLE_EVERY_S``).
Defaults work on a laptop with nothing configured (the *embedded* mode: a SQLite file and
a filesystem broker under ``DATA_DIR``, Celery workers started by the orchestrator itself).
Setting ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to the distributed mode; the
values for a cluster live in ``docker-compose.yml``.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

# Seconds the broker's visibility timeout exceeds the video task's hard limit by default.
VISIBILITY_MARGIN_S = 300

# Fields that are not read from a variable of their own name (see load_settings).
_DERIVED = ("data_dir", "database_url", "broker_url", "embedded")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    embedded: bool  # True when no broker was configured: the orchestrator runs its own workers

    # Ingest defaults (overridable per run on the command line).
    sample_every_s: float = field(default=3.0, metadata={"help": "Seconds between sampled frames."})
    min_confidence: float = field(default=0.95, metadata={"help": "Keep faces at least this confident."})
    crop_margin: float = field(default=0.3, metadata={"help": "Enlarge the face box by this fraction."})
    crop_size: int = field(default=128, metadata={"help": "Crop side in pixels."})
    # MTCNN runs on a copy of the frame whose longer side is at most this many pixels;
    # boxes are scaled back. Full-resolution detection costs 2-5x more and finds the same faces.
    detect_max_side: int = 480
    # Sampled frames of one video are detected in one batched call, this many at a time.
    detect_batch: int = 8
    # Smallest face searched for, as a fraction of the frame's shorter side (never under MTCNN's
    # 20 px of the frame shrunk to detect_max_side; 0: those 20 px). Skipping the pyramid levels of
    # small faces is most of the detector's saving; Celeb-DF's faces are large. At 0.15 faces from
    # 15 % of the shorter side up are found as at 0; recall and cost per fraction:
    # docs/benchmarks.md ("Minimum face size"). Use 0.10 (or 0) for datasets with small faces.
    min_face_fraction: float = 0.15
    # Seek to a sampled frame when the video's keyframes make that cheaper than decoding on to it.
    decode_seek: bool = True
    # Also write each video's crops decoded, in one file beside its PNGs (workers/crop_pack.py):
    # training reads it instead of decoding PNGs (no slow first epoch), for 48 KiB more per
    # 128 px crop. Without it, or for a video without one, training decodes the PNGs.
    crop_packs: bool = True
    # TensorFlow/OpenCV threads per worker process (0: the libraries decide). A CPU worker runs
    # one process per core, so one thread each; more would make the processes fight for cores.
    worker_threads: int = 1

    # Celery worker behaviour. Why each value: see workers/celery_app.py.
    cpu_task_soft_limit_s: int = 600
    cpu_task_hard_limit_s: int = 720
    gpu_task_soft_limit_s: int = 6 * 3600
    gpu_task_hard_limit_s: int = 6 * 3600 + 600
    # Redis hands a task's message to another worker when it has not been acknowledged this many
    # seconds after delivery: that is how the videos of a worker that died (SIGKILL, lost machine)
    # come back. 0: CPU_TASK_HARD_LIMIT_S + 300 s (17 min). Only video tasks are acknowledged late:
    # a training task is acknowledged on receipt and protected by its lease in the database
    # (workers/training/lease.py), so this no longer has to outlast a training run.
    broker_visibility_timeout_s: int = 0
    # A training run holds a lease in the database: its worker renews it every TRAIN_HEARTBEAT_S;
    # a run whose lease is older than TRAIN_LEASE_S is taken back by any GPU worker (or by
    # `orchestrator train --resume RUN`) and resumed from its last epoch checkpoint; after
    # TRAIN_MAX_ATTEMPTS starts it is marked failed.
    train_heartbeat_s: float = 30.0
    train_lease_s: float = 300.0
    train_max_attempts: int = 3
    db_pool_size: int = 2
    db_max_overflow: int = 2
    # Where crops, packs and run folders live (docs/storage.md): empty for DATA_DIR on local disk,
    # or s3://bucket/prefix (endpoint and credentials from the standard AWS_* variables). The
    # database and the broker stay where DATABASE_URL and CELERY_BROKER_URL say.
    storage_url: str = ""
    # Local folder (an SSD) where workers keep what they fetched from an object store; empty:
    # DATA_DIR/cache. Reused across runs; safe to delete.
    cache_dir: str = ""

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser().resolve() if self.cache_dir else self.data_dir / "cache"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def visibility_timeout_s(self) -> int:
        if self.broker_visibility_timeout_s > 0:
            return self.broker_visibility_timeout_s
        return self.cpu_task_hard_limit_s + VISIBILITY_MARGIN_S


def env_name(setting: str) -> str:
    return setting.upper()


def setting_default(setting: str):
    """The default of a tunable setting, as written in ``Settings``."""
    for f in fields(Settings):
        if f.name == setting and f.default is not MISSING:
            return f.default
    raise KeyError(setting)


def setting_help(setting: str) -> str:
    """Help text for a command-line option that overrides a setting: what it means, its default
    and the variable that changes the default."""
    f = next(f for f in fields(Settings) if f.name == setting)
    return f"{f.metadata.get('help', '')} [default: {f.default}; env {env_name(setting)}]".strip()


def environment_variables() -> list[str]:
    """Every variable load_settings reads."""
    return ["DATA_DIR", "DATABASE_URL", "CELERY_BROKER_URL",
            *(env_name(f.name) for f in fields(Settings) if f.name not in _DERIVED)]


def mask_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host`` URLs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    """Yes or no as people write it in a setting or an option (any case); ValueError for anything else."""
    word = text.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        raise ValueError(f"{text!r} is not one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")
    return word in TRUE_WORDS


def _parse(default, raw: str):
    if isinstance(default, bool):
        return parse_bool(raw)
    return type(default)(raw)


def load_settings() -> Settings:
    data_dir = Path(_env("DATA_DIR") or "./data").expanduser().resolve()
    broker = _env("CELERY_BROKER_URL")
    tunables = {}
    for f in fields(Settings):
        raw = None if f.name in _DERIVED else _env(env_name(f.name))
        if raw is not None:
            try:
                tunables[f.name] = _parse(f.default, raw)
            except ValueError:
                from shared.errors import InputError

                raise InputError(f"{env_name(f.name)}={raw!r}: not a {type(f.default).__name__}") from None
    return Settings(
        data_dir=data_dir,
        database_url=_env("DATABASE_URL") or f"sqlite:///{data_dir / 'pipeline.db'}",
        broker_url=broker or "filesystem://",
        embedded=broker is None,
        **tunables,
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
