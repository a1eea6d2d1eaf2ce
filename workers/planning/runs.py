"""Training runs: the split from the database, the run's record, one task on `gpu`, its report."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import func, insert, select

from db.models import Crop, Dataset, Ingest, Run, SplitMember, Video
from db.session import session_scope
from shared.errors import InputError
from shared.labels import DONE, FINISHED_STATUSES, LABEL_NAMES, RUN_DONE, RUN_FINISHED, RUN_QUEUED, RUN_RUNNING, TEST_LIST_NAME
from shared.settings import get_settings
from shared.storage import artifact_locations
from shared.train_config import TrainConfig, upscale_warning
from workers.celery_app import TRAIN_TASK, app
from workers.planning.evaluations import run_evaluations
from workers.planning.ingest import CROP_PARAMS
from workers.planning.split import CropRef, drop_training_fakes, fake_videos_by_part, split_crops, split_summary
from workers.planning.waiting import poll_until


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _crop_refs(dataset_id: int) -> list[CropRef]:
    """The dataset's crops. Group keys carry the dataset's id: two datasets' groups never merge."""
    with session_scope() as session:
        rows = session.execute(
            select(Crop.id, Video.id, Video.label, Video.group_key, Video.official_test)
            .join(Video, Crop.video_id == Video.id)
            .where(Video.status == DONE, Video.dataset_id == dataset_id)
            .order_by(Crop.id)
        ).all()
    return [CropRef(crop_id, video_id, label, f"{dataset_id}/{group}", official)
            for crop_id, video_id, label, group, official in rows]


def _unfinished_videos(dataset_id: int) -> list[tuple[str, str]]:
    """(relative path, status) of the dataset's videos that are not finished (pending or running)."""
    with session_scope() as session:
        return [tuple(row) for row in session.execute(
            select(Video.rel_path, Video.status)
            .where(Video.dataset_id == dataset_id, Video.status.not_in(FINISHED_STATUSES))
            .order_by(Video.rel_path))]


def _refuse_unfinished(name: str, unfinished: list[tuple[str, str]]) -> None:
    counts = {}
    for _, status in unfinished:
        counts[status] = counts.get(status, 0) + 1
    with session_scope() as session:
        total = session.scalar(select(func.count(Video.id)).join(Dataset, Video.dataset_id == Dataset.id)
                               .where(Dataset.name == name))
    raise InputError(
        f"dataset {name!r}: {len(unfinished)} of {total} videos are not finished "
        f"({', '.join(f'{n} {status}' for status, n in sorted(counts.items()))}): let its ingest finish "
        f"(`orchestrator status`; `orchestrator ingest` resumes an interrupted one), or add --partial "
        f"to train on the {total - len(unfinished)} finished ones")


def _ingest_params(dataset_id: int) -> dict | None:
    """How the dataset's crops were made (frames, margin, size, alignment...): predict must do the same."""
    with session_scope() as session:
        params = session.scalar(select(Dataset.params).where(Dataset.id == dataset_id))
        if params is None:  # recorded before datasets kept their parameters
            params = session.scalar(select(Ingest.params).where(Ingest.dataset_id == dataset_id)
                                    .order_by(Ingest.id.desc()).limit(1))
        return params


def training_datasets(names: list[str] | tuple[str, ...] | None) -> list[tuple[int, str, str]]:
    """(id, name, format) of the datasets named (default: every dataset with a crop). InputError
    for a name that is not recorded."""
    with session_scope() as session:
        known = {row.name: (row.id, row.name, row.format)
                 for row in session.execute(select(Dataset.id, Dataset.name, Dataset.format).order_by(Dataset.id))}
        if names:
            unknown = [name for name in names if name not in known]
            if unknown:
                listed = ", ".join(known) if known else "none yet"
                raise InputError(f"no dataset {unknown[0]!r} (known: {listed})")
            return [known[name] for name in dict.fromkeys(names)]
        with_crops = set(session.scalars(select(Video.dataset_id).join(Crop, Crop.video_id == Video.id).distinct()))
    return [entry for entry in known.values() if entry[0] in with_crops]


def plan_run(options: TrainConfig | dict, run_id: str | None = None,
             datasets: list[str] | None = None) -> tuple[str, dict]:
    """Record a run with its configuration and split. Nothing is written when the input is bad.

    ``options``: a checked TrainConfig (`orchestrator train`), or options still to check (the
    ``--train-option`` pairs an ingest recorded for ``--then-train``). The split is made per
    dataset and joined (``--split official`` takes each dataset's own test set), so every dataset
    is represented in train and test as it would be alone."""
    train_config = options if isinstance(options, TrainConfig) else TrainConfig.from_options(options, check_files=True)
    chosen = training_datasets(datasets)
    if not chosen:
        raise InputError("no crops in the database: run `orchestrator ingest DATASET` first")
    crops: list[CropRef] = []
    assignment: dict[int, str] = {}
    by_dataset: dict[str, dict] = {}
    params: dict[str, dict | None] = {}
    unfinished: dict[str, list[str]] = {}
    for dataset_id, name, fmt in chosen:
        pending = _unfinished_videos(dataset_id)
        if pending and not train_config.partial:
            _refuse_unfinished(name, pending)
        if pending:
            unfinished[name] = [rel_path for rel_path, _ in pending]
    for dataset_id, name, fmt in chosen:
        refs = _crop_refs(dataset_id)
        where = f"dataset {name!r}: " if len(chosen) > 1 or datasets else ""
        if train_config.split == "official" and refs and not any(ref.official_test for ref in refs):
            raise InputError(f"dataset {name!r} ({fmt}) has no official test set"
                             + (f" (no video is marked by {TEST_LIST_NAME})" if fmt == "celebdf" else "")
                             + ": use --split video")
        try:
            part = split_crops(refs, train_config.split, test_size=train_config.test_size,
                               val_size=train_config.val_size, seed=train_config.seed)
        except InputError as exc:
            raise InputError(f"{where}{exc}") from None
        dropped = 0
        if train_config.fakes == "sbi":
            refs, part, dropped = drop_training_fakes(refs, part)
        crops += refs
        assignment.update(part)
        by_dataset[name] = {**split_summary(refs, part, train_config.split), **fake_videos_by_part(refs, part),
                            "dropped_fake_videos": dropped}
        params[name] = _ingest_params(dataset_id)
    summary = split_summary(crops, assignment, train_config.split)
    summary.update(fake_videos_by_part(crops, assignment), fakes=train_config.fakes,
                   dropped_fake_videos=sum(d["dropped_fake_videos"] for d in by_dataset.values()))
    summary["datasets"] = by_dataset
    if unfinished:  # --partial: what was still being ingested when the split was made
        summary["unfinished_videos"] = unfinished
    ingest = _common_params(params)
    upscaled = upscale_warning(train_config.image_size, (ingest or {}).get("size"))
    config = {**train_config.as_dict(), "ingest": ingest, "datasets": list(params),
              "data_dir": str(get_settings().data_dir), "input_warnings": [upscaled] if upscaled else []}
    run_id = run_id or new_run_id()
    with session_scope() as session:
        session.add(Run(id=run_id, status=RUN_QUEUED, config=config, split=summary))
        session.flush()
        session.execute(insert(SplitMember), [
            {"run_id": run_id, "crop_id": crop_id, "part": part} for crop_id, part in assignment.items()
        ])
    return run_id, summary


def _common_params(params: dict[str, dict | None]) -> dict | None:
    """The one set of ingest parameters of the datasets a run trains on: the model learns crops made
    one way, and predict makes them that way. InputError when the datasets' crops differ."""
    names = list(params)
    first = params[names[0]]
    for name in names[1:]:
        other = params[name]
        if first is None or other is None:
            continue
        changed = [f"{key} {first.get(key)} vs {other.get(key)}" for key in CROP_PARAMS
                   if key in first and key in other and first.get(key) != other.get(key)]
        if changed:
            raise InputError(f"datasets {names[0]!r} and {name!r} were ingested with different parameters "
                             f"({', '.join(changed)}): train on them separately, or ingest them alike")
    return first


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


def run_report(run: Run, *, aggregate: str | None = None, dataset_keys: dict[str, str] | None = None) -> dict:
    """The object `orchestrator report --json` prints. ``aggregate``: video numbers under that rule
    (workers/training/aggregate.py; recomputed from the run's stored crop probabilities when it did
    not store the rule) instead of the run's own; ``dataset_keys``: dataset name -> published-table
    key, for datasets not recognised by format and name."""
    from workers.training.aggregate import check_rule, with_aggregation

    metrics = run.metrics or {}
    evaluations = run_evaluations([run.id]).get(run.id, [])
    if aggregate:
        check_rule(aggregate)
        metrics = _metrics_for_rule(run, metrics, aggregate)
        evaluations = [{**e, "metrics": with_aggregation(e["metrics"] or {}, aggregate)} for e in evaluations]
    history = run.history or {}
    artifacts = artifact_locations(run.artifacts)  # under this DATA_DIR (or the object store), for people
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
        # Crops of its split replaced since it was planned (videos changed on disk): None when none were.
        "data_changed": run.data_changed,
        "created_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        # The model scored on other datasets (`orchestrator evaluate`), oldest first.
        "evaluations": evaluations,
        # Its numbers beside the field's published ones for the same train -> test pair.
        "published": published_comparisons(run, evaluations, dataset_keys or {}),
    }


def _metrics_for_rule(run: Run, metrics: dict, rule: str) -> dict:
    from shared.storage import MissingObjects, local_copy, storage_key
    from workers.training.aggregate import recompute_from_files, with_aggregation

    if rule in (metrics.get("aggregations") or {}):
        return with_aggregation(metrics, rule)
    key = storage_key((run.artifacts or {}).get("dir") or f"runs/{run.id}")
    files = {}
    for name in ("test_predictions.csv", "val_predictions.csv"):  # under this DATA_DIR, or fetched from the store
        try:
            files[name] = local_copy(f"{key}/{name}")
        except MissingObjects:
            pass
    if "test_predictions.csv" not in files or not files["test_predictions.csv"].is_file():
        return metrics
    folder = files["test_predictions.csv"].parent
    entry = recompute_from_files(folder, rule, fallback=float(metrics.get("threshold", 0.5)))
    return with_aggregation({**metrics, "aggregations": {**(metrics.get("aggregations") or {}), rule: entry}}, rule)


def published_comparisons(run: Run, evaluations: list[dict], dataset_keys: dict[str, str]) -> list[dict]:
    """shared/published.py's comparisons for a run's evaluations on other datasets."""
    from shared.published import comparisons, dataset_key

    names = set(run.config.get("datasets") or []) | {e["dataset"] for e in evaluations}
    with session_scope() as session:
        rows = session.execute(select(Dataset.name, Dataset.format, Dataset.scan_options)
                               .where(Dataset.name.in_(names))).all()
    keys = {name: dataset_keys.get(name) or dataset_key(fmt, name, options) for name, fmt, options in rows}
    keys.update({name: key for name, key in dataset_keys.items() if name in names})
    done = [{**e, "key": keys.get(e["dataset"])} for e in evaluations if e.get("status") == RUN_DONE]
    return comparisons([keys.get(name) for name in run.config.get("datasets") or []], done)


def list_runs() -> list[dict]:
    evaluations = run_evaluations()
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
                "datasets": run.config.get("datasets"),
                "evaluations": evaluations.get(run.id, []),
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


def rewrite_report_html(run_id: str, *, dataset_keys: dict[str, str] | None = None) -> Path | None:
    """The finished run's report.html again, with its evaluations and the published numbers they
    stand beside (after `evaluate`, or when `report --dataset-key` names a pair); None when the run
    has no folder."""
    from shared.storage import fetch_to_cache, open_store, resolve, storage_key, upload_folder
    from workers.training.report_html import REPORT_FILE, write_report_html

    run = find_run(run_id)
    key = (run.artifacts or {}).get("dir")
    if run.status != RUN_DONE or not key:
        return None
    key, store = storage_key(key), open_store()
    if store.remote:  # the page is made from the folder's images and saved evaluations: fetched, then put back
        wanted = [k for k in store.list(key) if k.endswith(".png") or "/evaluations/" in k]
        if not wanted:
            return None
        fetch_to_cache(store, wanted, get_settings().cache_path)
        folder = get_settings().cache_path / key
    else:
        folder = resolve(key)  # a key: under this DATA_DIR, wherever the command runs
        if not folder.is_dir():
            return None
    report = run_report(run, dataset_keys=dataset_keys)
    # Evaluations are in the page's own table from their saved files; the report's list feeds the comparison.
    page = write_report_html({**report, "evaluations": []}, folder, evaluations=[
        {"dataset": e["dataset"], "metrics": e["metrics"]} for e in report["evaluations"] if e["status"] == RUN_DONE])
    upload_folder(key, folder, only=REPORT_FILE)
    return page
