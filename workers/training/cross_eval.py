"""Where a trained model meets another dataset: score one recorded evaluation (a run's model on a
dataset's crops, its test part or all of it), with the run's own metrics and an ROC plot."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select, update

from db.models import Crop, Dataset, Evaluation, Run, SplitMember, Video, utcnow
from db.session import session_scope
from shared.labels import DONE, RUN_DONE, RUN_FAILED, RUN_RUNNING
from shared.process import process_name
from shared.settings import get_settings
from shared.storage import (artifact_keys, local_copy, open_store, resolve, resolve_artifacts, storage_key,
                            upload_folder)

PART_TEST, PART_ALL = "test", "all"  # the run's held-out test crops of the dataset, or all of them


def evaluation_warnings(labels, probabilities) -> list[str]:
    """What makes an evaluation's numbers meaningless: constant predictions, or one class only."""
    import numpy as np

    from workers.training.threshold import CONSTANT_SPREAD

    warnings = []
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(probabilities) > 1 and np.ptp(probabilities) < CONSTANT_SPREAD:
        warnings.append(f"CONSTANT MODEL: every one of the {len(probabilities)} crops got "
                        f"{float(probabilities[0]):.5f}; its AUC means nothing")
    if len(set(int(label) for label in labels)) < 2:
        warnings.append("the evaluated crops hold one class only: AUC, AP and EER are undefined")
    return warnings


def roc_file_name(dataset: str) -> str:
    """``roc_<dataset>.png``, the name made safe for a file system."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset)
    return f"roc_{safe}.png"


def evaluation_crops(run_id: str, dataset_id: int, part: str) -> dict[str, list]:
    """{"paths", "labels", "video_ids"} of the crops an evaluation scores, in a stable order:
    ``test``: the dataset's crops in the run's test part; ``all``: every crop of its finished videos."""
    store = open_store()
    root = get_settings().cache_path if store.remote else get_settings().data_dir
    query = (select(Crop.crop_path, Video.label, Video.id).join(Video, Crop.video_id == Video.id)
             .where(Video.dataset_id == dataset_id, Video.status == DONE).order_by(Crop.id))
    if part == PART_TEST:
        query = query.join(SplitMember, SplitMember.crop_id == Crop.id).where(
            SplitMember.run_id == run_id, SplitMember.part == "test")
    with session_scope() as session:
        rows = session.execute(query).all()
    paths = [str(resolve(p, root)) for p, _, _ in rows]
    if store.remote:
        from workers.training.fetch import fetch_crops

        fetch_crops(store, [storage_key(p) for p, _, _ in rows], root)
    return {"paths": paths, "labels": [int(label) for _, label, _ in rows],
            "video_ids": [int(video_id) for _, _, video_id in rows]}


def execute_evaluation(evaluation_id: int) -> dict:
    """Score the evaluation's crops with its run's model, record metrics, write ``roc_<dataset>.png``
    and ``evaluation_<dataset>_<part>.json`` in the run's folder. Any failure (TensorFlow included)
    is recorded, then raised: the command waiting on the record must see it end."""
    with session_scope() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None:
            raise LookupError(f"no evaluation {evaluation_id}")
        if evaluation.status == RUN_DONE:
            return {"evaluation_id": evaluation_id, "status": RUN_DONE, "skipped": True}
        run = session.get(Run, evaluation.run_id)
        name = session.scalar(select(Dataset.name).where(Dataset.id == evaluation.dataset_id))
        evaluation.status, evaluation.worker, evaluation.error = RUN_RUNNING, process_name(), None
        run_id, dataset_id, part = evaluation.run_id, evaluation.dataset_id, evaluation.part
        config, artifacts, run_metrics = dict(run.config), resolve_artifacts(run.artifacts), dict(run.metrics or {})
    try:
        from workers.training.aggregate import scored_at_run_thresholds, with_aggregation, write_predictions
        from workers.training.evaluate import compute_metrics
        from workers.training.inference import load_model, predict_probabilities
        from workers.training.plots import plot_roc

        crops = evaluation_crops(run_id, dataset_id, part)
        model = load_model(local_copy(artifacts["model"]))
        probabilities = predict_probabilities(model, crops["paths"], batch_size=config.get("batch_size", 32))
        # The run's own decision threshold (chosen on its validation part where training does so).
        threshold = run_metrics.get("threshold", config.get("threshold", 0.5))
        metrics = compute_metrics(crops["labels"], probabilities, crops["video_ids"], threshold=threshold)
        metrics["threshold_rule"] = run_metrics.get("threshold_rule")
        metrics["warnings"] = evaluation_warnings(crops["labels"], probabilities)
        # Every video rule at the run's threshold for it; the run's own rule on top. The crops'
        # probabilities are kept, so another rule is recomputed without the model.
        metrics["aggregations"] = scored_at_run_thresholds(crops["paths"], crops["video_ids"], crops["labels"],
                                                           probabilities, run_metrics)
        metrics = with_aggregation(metrics, config.get("aggregate", "mean"))
        out_dir = Path(artifacts.get("dir") or get_settings().runs_dir / run_id)
        out_dir.mkdir(parents=True, exist_ok=True)  # on a host that never held the run (object store)
        predictions = write_predictions(out_dir / f"evaluation_{roc_file_name(name)[4:-4]}_{part}.csv",
                                        [storage_key(p) for p in crops["paths"]], crops["video_ids"], crops["labels"],
                                        probabilities)
        roc = plot_roc(crops["labels"], probabilities, out_dir / roc_file_name(name),
                       title=f"{name} ({part}): run {run_id}")
        result_file = out_dir / f"evaluation_{roc_file_name(name)[4:-4]}_{part}.json"
        result_file.write_text(json.dumps({"run_id": run_id, "dataset": name, "part": part,
                                           "videos": len(set(crops["video_ids"])), "crops": len(crops["paths"]),
                                           "metrics": metrics}, indent=2))
        for written in (roc, result_file, predictions):  # into the object store's run folder, where there is one
            upload_folder(storage_key(Path(written).parent), Path(written).parent, only=Path(written).name)
        with session_scope() as session:
            session.execute(update(Evaluation).where(Evaluation.id == evaluation_id).values(
                status=RUN_DONE, videos=len(set(crops["video_ids"])), crops=len(crops["paths"]), metrics=metrics,
                artifacts=artifact_keys({"roc": str(roc), "result": str(result_file)}), finished_at=utcnow()))
        return {"evaluation_id": evaluation_id, "status": RUN_DONE, "video_auc": metrics.get("video_auc")}
    except BaseException as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        with session_scope() as session:
            session.execute(update(Evaluation).where(Evaluation.id == evaluation_id).values(
                status=RUN_FAILED, error=f"{type(exc).__name__}: {message}"[:2000], finished_at=utcnow()))
        raise
