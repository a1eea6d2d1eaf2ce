"""Training runs: the split from the database, the run's record, one task on `gpu`, its report."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select

from db.models import Crop, Dataset, Ingest, Run, SplitMember, Video
from db.session import session_scope
from shared.errors import InputError
from shared.labels import DONE, LABEL_NAMES, RUN_DONE, RUN_FINISHED, RUN_QUEUED, RUN_RUNNING
from shared.settings import get_settings
from shared.train_config import TrainConfig
from workers.celery_app import TRAIN_TASK, app
from workers.planning.split import CropRef, split_crops, split_summary
from workers.planning.waiting import poll_until


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_options(options: dict) -> dict:
    """Resolved options, or an InputError naming what is wrong."""
    return TrainConfig.from_options(options, check_files=True).as_dict()


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
    config["ingest"] = _ingest_params()
    config["data_dir"] = str(get_settings().data_dir)
    run_id = run_id or new_run_id()
    with session_scope() as session:
        session.add(Run(id=run_id, status=RUN_QUEUED, config=config, split=summary))
        session.flush()
        session.execute(insert(SplitMember), [
            {"run_id": run_id, "crop_id": crop_id, "part": part} for crop_id, part in assignment.items()
        ])
    return run_id, summary


def dispatch_run(run_id: str, config: dict) -> str:
    """One training task; its queue comes from the app's routes (workers/celery_app.py)."""
    summary = f"{config['backbone']} {config['split']} split, {config['epochs']} epochs"
    result = app.send_task(TRAIN_TASK, kwargs={"run_id": run_id, "summary": summary})
    with session_scope() as session:
        session.get(Run, run_id).task_id = result.id
    return result.id


def run_state(run_id: str) -> tuple[str, dict | None, str | None]:
    with session_scope() as session:
        run = session.get(Run, run_id)
        return run.status, run.progress, run.error


def wait_for_run(run_id: str, *, on_tick: Callable[[dict | None], None] | None = None,
                 check: Callable[[], None] | None = None,
                 on_db_retry: Callable[[Exception], None] | None = None, poll_s: float = 1.0) -> str:
    """Block until the run is done or failed; ``on_tick`` sees its progress."""
    status, _, _ = poll_until(
        lambda: run_state(run_id), lambda state: state[0] in RUN_FINISHED,
        on_tick=(lambda state: on_tick(state[1])) if on_tick else None,
        check=check, on_db_retry=on_db_retry, poll_s=poll_s,
    )
    return status


def find_run(run_id: str | None = None, *, finished: bool = False) -> Run:
    """The run named, or the latest one (the latest done one with ``finished``); InputError
    when there is none."""
    with session_scope() as session:
        if run_id:
            run = session.get(Run, run_id)
            if run is None:
                raise InputError(f"no run {run_id!r}: `orchestrator runs` lists them")
        else:
            query = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
            if finished:
                query = query.where(Run.status == RUN_DONE)
            run = session.scalar(query)
            if run is None:
                raise InputError("no finished training run: `orchestrator train` makes one" if finished
                                 else "no training run yet: `orchestrator train` starts one")
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
        "status": RUN_RUNNING if run.status in (RUN_QUEUED, RUN_RUNNING) else run.status,
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


def held_out_examples(run_id: str) -> list[tuple[str, Path]]:
    """[("real", path), ("fake", path)]: the first video of each class in the run's test part."""
    with session_scope() as session:
        rows = session.execute(
            select(Video.label, Dataset.root, Video.rel_path).join(Crop, Crop.video_id == Video.id)
            .join(Dataset, Dataset.id == Video.dataset_id)
            .join(SplitMember, SplitMember.crop_id == Crop.id)
            .where(SplitMember.run_id == run_id, SplitMember.part == "test")
            .distinct().order_by(Dataset.root, Video.rel_path)
        ).all()
    chosen = {}
    for label, root, rel_path in rows:
        chosen.setdefault(LABEL_NAMES[label], Path(root) / rel_path)
    return [(name, chosen[name]) for name in ("real", "fake") if name in chosen]
