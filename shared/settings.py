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

# Every password in .env.example starts with this. A cluster started from an unedited copy would run
# with passwords published in this repository, so load_settings refuses a variable that carries one:
# every pipeline process (CLI, workers, Flower) and docker-compose.yml's check-settings service,
# which Redis and PostgreSQL wait for, stop with one line.
PLACEHOLDER_PREFIX = "change-me"
# The variables that carry a password: the URLs', Flower's `user:password[,user:password]`, and
# the bare passwords that compose hands to Redis and PostgreSQL.
SECRET_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "FLOWER_BASIC_AUTH",
                    "REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_PASSWORD")


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
        return self.cpu_task_hard_limit_s + VISIBILITY_MARGIN_S

    @property
    def redelivery_sweep_s(self) -> int:
        """Seconds between a worker's looks for messages past the visibility timeout: ten looks per
        timeout, 1 to 100 s. A dead worker's message is back on its queue within timeout + sweep."""
        return max(1, min(100, self.visibility_timeout_s // 10))


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


def placeholder_secrets(environ) -> list[str]:
    """The variables of ``environ`` whose password is still .env.example's placeholder."""
    from urllib.parse import urlsplit

    found = []
    for name in SECRET_VARIABLES:
        value = environ.get(name) or ""
        if name.endswith("_URL"):
            try:
                passwords = [urlsplit(value).password or ""]
            except ValueError:
                passwords = []
        elif name == "FLOWER_BASIC_AUTH":
            passwords = [pair.partition(":")[2] for pair in value.split(",")]
        else:
            passwords = [value]
        if any(password.strip().lower().startswith(PLACEHOLDER_PREFIX) for password in passwords):
            found.append(name)
    return found


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _parse(default, raw: str):
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return type(default)(raw)


def load_settings() -> Settings:
    placeholders = placeholder_secrets(os.environ)
    if placeholders:
        from shared.errors import InputError

        raise InputError(f"{', '.join(placeholders)}: the password is still the placeholder of .env.example "
                         f"({PLACEHOLDER_PREFIX}-...); set a real one in .env (e.g. openssl rand -hex 24)")
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


def main() -> None:
    """`python -m shared.settings`: read the settings as every pipeline process does; one line and
    exit 2 if they cannot be used. docker-compose.yml's check-settings service runs it before Redis
    and PostgreSQL start."""
    import sys

    from shared.errors import InputError

    try:
        settings = load_settings()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"settings: usable (database {mask_url(settings.database_url)}, broker {mask_url(settings.broker_url)})")


if __name__ == "__main__":
    main()
