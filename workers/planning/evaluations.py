"""Cross-dataset evaluation: which crops a run's model may be scored on, the evaluation's record,
one task on `gpu` (like training), and the objects `evaluate`, `report` and `runs` print."""

from __future__ import annotations

from typing import Callable

from sqlalchemy import delete, func, select

from db.models import Crop, Dataset, Evaluation, Run, SplitMember, Video
from db.session import session_scope
from shared.errors import InputError
from shared.labels import DONE, RUN_DONE, RUN_FINISHED, RUN_QUEUED
from shared.storage import artifact_locations
from workers.celery_app import EVALUATE_TASK, app
from workers.planning.waiting import poll_until
from workers.training.cross_eval import PART_ALL, PART_TEST

PARTS = (PART_TEST, PART_ALL)


def trained_datasets(run_id: str) -> set[int]:
    """Ids of the datasets whose crops are in the run's split (any part): the model learnt from them."""
    with session_scope() as session:
        return set(session.scalars(
            select(Video.dataset_id).join(Crop, Crop.video_id == Video.id)
            .join(SplitMember, SplitMember.crop_id == Crop.id).where(SplitMember.run_id == run_id).distinct()))


def params_mismatch(run: Run, dataset_params: dict | None) -> list[str]:
    """How the dataset's crops were made differently from the run's training crops (a model scored
    on crops cut another way is measured on something it never saw the like of)."""
    from workers.planning.ingest import CROP_PARAMS

    trained = run.config.get("ingest") or {}
    if not trained or not dataset_params:
        return []
    return [f"{key} {trained.get(key)} vs {dataset_params.get(key)}" for key in CROP_PARAMS
            if key in trained and key in dataset_params and trained.get(key) != dataset_params.get(key)]


def plan_evaluation(run: Run, dataset: str, part: str | None = None) -> tuple[int, list[str]]:
    """Record (or record again) the evaluation of a finished run on a dataset: (its id, warnings).
    InputError, with nothing written, for an unknown dataset, a part that would score what the model
    learnt, or nothing to score."""
    if run.status != RUN_DONE:
        raise InputError(f"run {run.id} is {run.status}: only a finished run can be evaluated")
    with session_scope() as session:
        found = session.execute(select(Dataset.id, Dataset.params).where(Dataset.name == dataset)).first()
        dataset_id, dataset_params = found if found else (None, None)
        if dataset_id is None:
            known = list(session.scalars(select(Dataset.name).order_by(Dataset.id)))
            raise InputError(f"no dataset {dataset!r} (known: {', '.join(known) or 'none yet'})")
    trained_on = dataset_id in trained_datasets(run.id)
    part = (part or (PART_TEST if trained_on else PART_ALL)).lower()
    if part not in PARTS:
        raise InputError(f"--part must be one of {', '.join(PARTS)}, got {part!r}")
    if trained_on and part != PART_TEST:
        raise InputError(f"run {run.id} trained on dataset {dataset!r}: only --part test may be scored "
                         f"(--part {part} would score videos the model learnt)")
    with session_scope() as session:
        query = select(func.count(Crop.id)).join(Video, Crop.video_id == Video.id).where(
            Video.dataset_id == dataset_id, Video.status == DONE)
        if part == PART_TEST:
            query = query.join(SplitMember, SplitMember.crop_id == Crop.id).where(
                SplitMember.run_id == run.id, SplitMember.part == "test")
        if not session.scalar(query):
            raise InputError(f"dataset {dataset!r} has no crops to score"
                             + (f" in run {run.id}'s test part" if part == PART_TEST else "")
                             + ": ingest it first")
        # One result per (run, dataset, part): evaluating again replaces it.
        session.execute(delete(Evaluation).where(Evaluation.run_id == run.id, Evaluation.dataset_id == dataset_id,
                                                 Evaluation.part == part))
        evaluation = Evaluation(run_id=run.id, dataset_id=dataset_id, part=part, status=RUN_QUEUED)
        session.add(evaluation)
        session.flush()
        evaluation_id = evaluation.id
    changed = params_mismatch(run, dataset_params)
    warnings = [f"dataset {dataset!r} was ingested with other parameters than run {run.id}'s training data "
                f"({', '.join(changed)}): the scores measure the model on crops cut another way"] if changed else []
    return evaluation_id, warnings


def dispatch_evaluation(evaluation_id: int, summary: str = "") -> str:
    """One task; its queue (gpu) comes from the app's routes (workers/celery_app.py)."""
    result = app.send_task(EVALUATE_TASK, kwargs={"evaluation_id": evaluation_id, "summary": summary})
    with session_scope() as session:
        session.get(Evaluation, evaluation_id).task_id = result.id
    return result.id


def evaluation_status(evaluation_id: int) -> str:
    with session_scope() as session:
        return session.scalar(select(Evaluation.status).where(Evaluation.id == evaluation_id))


def wait_for_evaluation(evaluation_id: int, *, check: Callable[[], None] | None = None,
                        on_db_retry: Callable[[Exception], None] | None = None, poll_s: float = 1.0) -> str:
    return poll_until(lambda: evaluation_status(evaluation_id), lambda status: status in RUN_FINISHED,
                      check=check, on_db_retry=on_db_retry, poll_s=poll_s)


def _report(evaluation: Evaluation, dataset: str) -> dict:
    return {
        "run_id": evaluation.run_id,
        "dataset": dataset,
        "part": evaluation.part,
        "status": evaluation.status,
        "videos": evaluation.videos,
        "crops": evaluation.crops,
        "metrics": evaluation.metrics,
        "roc": artifact_locations(evaluation.artifacts).get("roc"),
        "error": evaluation.error,
    }


def evaluation_report(evaluation_id: int) -> dict:
    """The object `orchestrator evaluate --json` prints."""
    with session_scope() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        name = session.scalar(select(Dataset.name).where(Dataset.id == evaluation.dataset_id))
        return _report(evaluation, name)


def run_evaluations(run_ids: list[str] | None = None) -> dict[str, list[dict]]:
    """run id -> its evaluations (oldest first), for `report` and `runs`."""
    with session_scope() as session:
        query = select(Evaluation, Dataset.name).join(Dataset, Evaluation.dataset_id == Dataset.id).order_by(
            Evaluation.id)
        if run_ids is not None:
            query = query.where(Evaluation.run_id.in_(run_ids))
        found: dict[str, list[dict]] = {}
        for evaluation, name in session.execute(query).all():
            found.setdefault(evaluation.run_id, []).append(_report(evaluation, name))
    return found
