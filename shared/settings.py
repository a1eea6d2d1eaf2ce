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
# the bare passwords that compose hands to Redis and PostgreSQL, and the object store's secret key.
SECRET_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "FLOWER_BASIC_AUTH",
                    "REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_PASSWORD", "AWS_SECRET_ACCESS_KEY")


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
    detect_max_side: int = field(default=480, metadata={"help": "Faces are detected on a copy of the frame whose longer side is at most this many pixels (boxes scaled back)."})
    # Sampled frames of one video are detected in one batched call, this many at a time.
    detect_batch: int = field(default=8, metadata={"help": "Sampled frames of a video per batched MTCNN call."})
    # Smallest face searched for, as a fraction of the frame's shorter side (never under MTCNN's
    # 20 px of the frame shrunk to detect_max_side; 0: those 20 px). Skipping the pyramid levels of
    # small faces is most of the detector's saving; Celeb-DF's faces are large. At 0.15 faces from
    # 15 % of the shorter side up are found as at 0; recall and cost per fraction:
    # docs/benchmarks.md ("Minimum face size"). Use 0.10 (or 0) for datasets with small faces.
    min_face_fraction: float = field(default=0.15, metadata={"help": "Smallest face searched for, as a fraction of the frame's shorter side (0.10 or 0 for datasets with small faces)."})
    # Seek to a sampled frame when the video's keyframes make that cheaper than decoding on to it.
    decode_seek: bool = field(default=True, metadata={"help": "Seek to a sampled frame when the keyframes make that cheaper than decoding on to it."})
    # Also write each video's crops decoded, in one file beside its PNGs (workers/crop_pack.py):
    # training reads it instead of decoding PNGs (no slow first epoch), for 48 KiB more per
    # 128 px crop. Without it, or for a video without one, training decodes the PNGs.
    crop_packs: bool = field(default=True, metadata={"help": "Also write each video's crops decoded in crops.pack, which training reads instead of PNGs."})
    # TensorFlow/OpenCV threads per worker process (0: the libraries decide). A CPU worker runs
    # one process per core, so one thread each; more would make the processes fight for cores.
    worker_threads: int = field(default=1, metadata={"help": "TensorFlow/OpenCV/FFmpeg threads per worker process (0: the libraries decide)."})

    # Celery worker behaviour. Why each value: see workers/celery_app.py.
    cpu_task_soft_limit_s: int = field(default=600, metadata={"help": "Soft time limit of a video task: the video is recorded as failed."})
    cpu_task_hard_limit_s: int = field(default=720, metadata={"help": "Hard time limit of a video task: its process is killed."})
    gpu_task_soft_limit_s: int = field(default=6 * 3600, metadata={"help": "Soft time limit of a training or evaluation task."})
    gpu_task_hard_limit_s: int = field(default=6 * 3600 + 600, metadata={"help": "Hard time limit of a training or evaluation task."})
    # Redis hands a task's message to another worker when it has not been acknowledged this many
    # seconds after delivery: that is how the videos of a worker that died (SIGKILL, lost machine)
    # come back. 0: CPU_TASK_HARD_LIMIT_S + 300 s (17 min). Only video tasks are acknowledged late:
    # a training task is acknowledged on receipt and protected by its lease in the database
    # (workers/training/lease.py), so this no longer has to outlast a training run.
    broker_visibility_timeout_s: int = field(default=0, metadata={"help": "Seconds after which Redis hands an unacknowledged video task to another worker; 0: CPU_TASK_HARD_LIMIT_S + 300."})
    # A training run holds a lease in the database: its worker renews it every TRAIN_HEARTBEAT_S;
    # a run whose lease is older than TRAIN_LEASE_S is taken back by any GPU worker (or by
    # `orchestrator train --resume RUN`) and resumed from its last epoch checkpoint; after
    # TRAIN_MAX_ATTEMPTS starts it is marked failed.
    train_heartbeat_s: float = field(default=30.0, metadata={"help": "How often a training worker renews its run's lease."})
    train_lease_s: float = field(default=300.0, metadata={"help": "A run whose lease is older than this is taken back by any GPU worker and resumed."})
    train_max_attempts: int = field(default=3, metadata={"help": "Starts of a run before it is marked failed."})
    # Judging one uploaded or listed video on the `predict` queue (workers/judge.py). Both stay under
    # the Redis visibility timeout (CPU_TASK_HARD_LIMIT_S + 300 s), as the video task's do.
    predict_task_soft_limit_s: int = field(default=300, metadata={"help": "Soft time limit of judging one video on the predict queue."})
    predict_task_hard_limit_s: int = field(default=360, metadata={"help": "Hard time limit of judging one video."})
    # A judgement whose worker died this many times in the middle of it is marked failed.
    predict_max_attempts: int = field(default=3, metadata={"help": "A judgement whose worker died this many times mid-way is marked failed."})
    # `orchestrator serve`: the largest upload (413 above it), requests per API key per minute
    # (429 above it), and uploads received at once (429 above it: the disk and the hashing are the
    # server's work; the judging is the workers').
    api_max_upload_mb: int = field(default=200, metadata={"help": "Largest upload to `orchestrator serve`, in MB (413 above it)."})
    api_requests_per_minute: int = field(default=120, metadata={"help": "Requests per API key per minute (429 above it)."})
    api_max_concurrent_uploads: int = field(default=8, metadata={"help": "Uploads the server receives at once (429 above it)."})
    db_pool_size: int = field(default=2, metadata={"help": "Database connections kept per process."})
    db_max_overflow: int = field(default=2, metadata={"help": "Extra database connections a process may open beyond the pool."})
    # Where crops, packs and run folders live (docs/storage.md): empty for DATA_DIR on local disk,
    # or s3://bucket/prefix (endpoint and credentials from the standard AWS_* variables). The
    # database and the broker stay where DATABASE_URL and CELERY_BROKER_URL say.
    storage_url: str = field(default="", metadata={"help": "Where crops, packs and run folders live: empty for DATA_DIR, or s3://bucket/prefix (credentials from AWS_* variables)."})
    # Local folder (an SSD) where workers keep what they fetched from an object store; empty:
    # DATA_DIR/cache. Reused across runs; safe to delete.
    cache_dir: str = field(default="", metadata={"help": "Local folder for what workers fetch from an object store; empty: DATA_DIR/cache."})

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

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


# The variables that are not fields of their own name: what each means and its default.
_DERIVED_DOCS = (
    ("DATA_DIR", "`./data`", "Database (embedded), crops, runs, the embedded broker's messages, logs."),
    ("DATABASE_URL", "`sqlite:///$DATA_DIR/pipeline.db`", "SQLAlchemy URL (PostgreSQL on a cluster)."),
    ("CELERY_BROKER_URL", "unset: embedded mode", "Redis URL of a cluster; unset, the orchestrator runs its own workers."),
)


def settings_table() -> str:
    """The Markdown table of every variable, its default and its meaning (docs/settings.md holds it;
    `python -m shared.settings --table` prints it)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {default} | {meaning} |" for name, default, meaning in _DERIVED_DOCS]
    for f in fields(Settings):
        if f.name not in _DERIVED:
            default = str(f.default).lower() if isinstance(f.default, bool) else f.default
            rows.append(f"| `{env_name(f.name)}` | `{default}` | {f.metadata.get('help', '')} |")
    return "\n".join(rows) + "\n"


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
    and PostgreSQL start. `python -m shared.settings --table` prints docs/settings.md's table."""
    import sys

    if sys.argv[1:] == ["--table"]:
        print(settings_table(), end="")
        return

    from shared.errors import InputError

    try:
        settings = load_settings()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"settings: usable (database {mask_url(settings.database_url)}, broker {mask_url(settings.broker_url)})")


if __name__ == "__main__":
    main()
