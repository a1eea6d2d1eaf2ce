"""Planning a training run: the split from the database, the run's record, one task on `gpu`."""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select

from db.models import Crop, Ingest, Run, SplitMember, Video
from db.session import call_with_db_retry, session_scope
from orchestrator.errors import InputError
from orchestrator.split import CropRef, split_crops, split_summary
from shared.labels import DONE
from shared.settings import get_settings
from workers.celery_app import GPU_QUEUE, TRAIN_TASK, app

RUN_FINISHED = ("done", "failed")
TRAIN_DEFAULTS = {
    "backbone": "resnet50",
    "weights": "imagenet",
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 1e-4,
    "split": "video",
    "test_size": 0.2,
    "val_size": 0.1,
    "seed": 42,
    "class_weight": "balanced",
    "image_size": 128,
    "dropout": 0.3,
    "mixed_precision": False,
    "threshold": 0.5,
    "cache": "memory",
}


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_options(options: dict) -> dict:
    """Resolved options, or an InputError naming what is wrong."""
    from shared.preprocessing import BACKBONES

    resolved = {**TRAIN_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    if resolved["backbone"] not in BACKBONES:
        raise InputError(f"unknown --backbone {resolved['backbone']!r}; choose one of {', '.join(BACKBONES)}")
    if int(resolved["image_size"]) < 32:
        raise InputError(f"--image-size must be at least 32 pixels, got {resolved['image_size']}")
    for key in ("epochs", "batch_size"):
        if int(resolved[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1, got {resolved[key]}")
    if not resolved["learning_rate"] > 0:
        raise InputError(f"--lr must be positive, got {resolved['learning_rate']}")
    if resolved["class_weight"] not in ("balanced", "none"):
        raise InputError("--class-weight must be balanced or none")
    weights = str(resolved["weights"])
    if resolved["backbone"] == "tiny" and weights.lower() != "none":
        raise InputError("--backbone tiny has no pretrained weights: add --weights none")
    if weights.lower() not in ("imagenet", "none"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"--weights {weights}: no such file (use imagenet, none, or a local notop .h5)")
        resolved["weights"] = str(path.resolve())
    return resolved


def _crop_refs() -> list[CropRef]:
    with session_scope() as session:
        rows = session.execute(
            select(Crop.id, Video.id, Video.label, Video.group_key, Video.official_test)
            .join(Video, Crop.video_id == Video.id)
            .where(Video.status == DONE)
            .order_by(Crop.id)
        ).all()
    return [CropRef(*row) for row in rows]


def _ingest_params() -> dict | None:
    """How the crops were made (frame interval, margin, size...): predict must do the same."""
    with session_scope() as session:
        return session.scalar(select(Ingest.params).order_by(Ingest.id.desc()).limit(1))


def plan_run(options: dict, run_id: str | None = None) -> tuple[str, dict]:
    """Record a run with its configuration and split. Nothing is written when the input is bad."""
    config = check_options(options)
    crops = _crop_refs()
    assignment = split_crops(crops, config["split"], test_size=config["test_size"],
                             val_size=config["val_size"], seed=config["seed"])
    summary = split_summary(crops, assignment, config["split"])
    settings = get_settings()
    config["ingest"] = _ingest_params()
    config["data_dir"] = str(settings.data_dir)
    run_id = run_id or new_run_id()
    with session_scope() as session:
        session.add(Run(id=run_id, status="queued", config=config, split=summary))
        session.flush()
        session.execute(insert(SplitMember), [
            {"run_id": run_id, "crop_id": crop_id, "part": part} for crop_id, part in assignment.items()
        ])
    return run_id, summary


def parse_train_options(pairs: list[str]) -> dict:
    """["epochs=1", "weights=none"] -> {"epochs": 1, "weights": "none"}, typed like the defaults."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if key == "lr":
            key = "learning_rate"
        if not sep or key not in TRAIN_DEFAULTS:
            raise InputError(f"--train-option {pair!r}: expected KEY=VALUE with KEY one of {', '.join(TRAIN_DEFAULTS)}")
        default = TRAIN_DEFAULTS[key]
        try:
            if isinstance(default, bool):
                options[key] = value.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, (int, float)):
                options[key] = type(default)(value)
            else:
                options[key] = value.strip()
        except ValueError:
            raise InputError(f"--train-option {pair!r}: {value!r} is not a {type(default).__name__}") from None
    return options


def dispatch_run(run_id: str, config: dict) -> str:
    summary = f"{config['backbone']} {config['split']} split, {config['epochs']} epochs"
    result = app.send_task(TRAIN_TASK, kwargs={"run_id": run_id, "summary": summary}, queue=GPU_QUEUE)
    with session_scope() as session:
        session.get(Run, run_id).task_id = result.id
    return result.id


def run_state(run_id: str) -> tuple[str, dict | None, str | None]:
    with session_scope() as session:
        run = session.get(Run, run_id)
        return run.status, run.progress, run.error


def wait_for_run(run_id: str, *, on_tick: Callable[[dict | None], None] | None = None,
                 check: Callable[[], None] | None = None, poll_s: float = 1.0) -> str:
    from orchestrator.ingest import warn_database_unreachable

    while True:
        status, progress, _ = call_with_db_retry(lambda: run_state(run_id), on_retry=warn_database_unreachable)
        if on_tick:
            on_tick(progress)
        if status in RUN_FINISHED:
            return status
        if check:
            check()
        time.sleep(poll_s)


def find_run(run_id: str | None) -> Run:
    """The run named, or the latest one; InputError when there is none."""
    with session_scope() as session:
        if run_id:
            run = session.get(Run, run_id)
            if run is None:
                raise InputError(f"no run {run_id!r}: `orchestrator runs` lists them")
        else:
            run = session.scalar(select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(1))
            if run is None:
                raise InputError("no training run yet: `orchestrator train` starts one")
        session.expunge(run)
        return run


REPORT_METRICS = ("loss", "accuracy", "precision", "recall", "f1", "auc", "ap", "eer",
                  "video_auc", "video_accuracy", "confusion_matrix")


def run_report(run: Run) -> dict:
    """The object `orchestrator report --json` prints."""
    metrics = run.metrics or {}
    history = run.history or {}
    artifacts = run.artifacts or {}
    return {
        "run_id": run.id,
        "status": "running" if run.status in ("queued", "running") else run.status,
        "config": run.config,
        "split": run.split,
        "metrics": {**{k: metrics.get(k) for k in REPORT_METRICS}, **metrics},
        "history": {k: history.get(k, []) for k in ("loss", "accuracy", "val_loss", "val_accuracy")} | history,
        "artifacts": {"model": artifacts.get("model"), "plots": artifacts.get("plots", []), **artifacts},
        "progress": run.progress,
        "error": run.error,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def list_runs() -> list[dict]:
    with session_scope() as session:
        runs = session.scalars(select(Run).order_by(Run.created_at, Run.id)).all()
        rows = []
        for run in runs:
            metrics = run.metrics or {}
            rows.append({
                "run_id": run.id,
                "status": run.status,
                "backbone": run.config.get("backbone"),
                "split": run.config.get("split"),
                "epochs": run.config.get("epochs"),
                "weights": run.config.get("weights"),
                "test_crops": (run.split or {}).get("test_crops"),
                "leaks": (run.split or {}).get("leaks"),
                "warnings": metrics.get("warnings") or [],
                **{k: metrics.get(k) for k in ("accuracy", "auc", "eer", "video_auc", "video_accuracy")},
            })
    return rows
