"""Judging one recorded judgement in a worker: claim it, judge its video with the run's model
(loaded once per process and kept), record the verdict once.

A judgement is claimed by one conditional UPDATE (queued or running -> running, attempts + 1) and
finished by another (running -> done/no_face/failed): a message delivered twice (a worker killed
mid-judgement and its task requeued, a Redis visibility timeout) judges again but records once.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select, update

from db.models import Judgement
from db.session import session_scope
from shared.process import process_name
from shared.settings import get_settings
from shared.storage import fetched, local_copy, open_store
from workers.planning.judgements import DONE, FAILED, NO_FACE, QUEUED, RUNNING, copy_verdict

log = logging.getLogger(__name__)

# Models this process holds, by (path, sha256), most recently used last. Two: a service switching
# to a new run keeps the old one while its last judgements finish, and never holds more.
MODELS_KEPT = 2
_models: OrderedDict[tuple[str, str], object] = OrderedDict()


def cached_model(path: str, sha256: str):
    """The run's model, loaded on this process's first judgement with it and kept."""
    key = (path, sha256)
    if key in _models:
        _models.move_to_end(key)
        return _models[key]
    from workers.training.inference import load_model

    _models[key] = load_model(path)
    while len(_models) > MODELS_KEPT:
        _models.popitem(last=False)
    return _models[key]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def claim(judgement_id: str) -> Judgement | None:
    """The judgement, now running in this process; None when it is finished (or unknown)."""
    with session_scope() as session:
        claimed = session.execute(
            update(Judgement).where(Judgement.id == judgement_id, Judgement.status.in_((QUEUED, RUNNING)))
            .values(status=RUNNING, attempts=Judgement.attempts + 1, worker=process_name(), started_at=_now())
        ).rowcount
        if not claimed:
            return None
        row = session.get(Judgement, judgement_id)
        session.expunge(row)
        return row


def finish(judgement_id: str, **values) -> bool:
    """Record the outcome unless another delivery already did: True when this one wrote it."""
    with session_scope() as session:
        return bool(session.execute(
            update(Judgement).where(Judgement.id == judgement_id, Judgement.status.in_((QUEUED, RUNNING)))
            .values(finished_at=_now(), **values)).rowcount)


def record_judgement_failure(judgement_id: str, error: BaseException | str) -> bool:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return finish(judgement_id, status=FAILED, error=text[:2000])


def _stored_twin(row: Judgement) -> Judgement | None:
    """A finished judgement of the same bytes by the same model (reported while this one was queued)."""
    with session_scope() as session:
        query = select(Judgement).where(
            Judgement.video_sha256 == row.video_sha256, Judgement.model_sha256 == row.model_sha256,
            Judgement.status.in_((DONE, NO_FACE)), Judgement.id != row.id)
        if row.explain:
            query = query.where(Judgement.explain.is_(True))
        twin = session.scalar(query.order_by(Judgement.finished_at).limit(1))
        if twin is not None:
            session.expunge(twin)
        return twin


def judge_recorded(judgement_id: str, *, force: bool = False) -> dict:
    """Claim, judge and record one judgement; {"id", "status", ...} of what happened. Without
    ``force``, a verdict of the same bytes by the same model stored meanwhile is given again."""
    from shared.ingest_params import IngestParams

    started = time.monotonic()
    row = claim(judgement_id)
    if row is None:
        return {"id": judgement_id, "status": "skipped", "reason": "already finished"}
    if row.attempts > get_settings().predict_max_attempts:
        record_judgement_failure(judgement_id, f"its worker died {row.attempts - 1} times while judging it")
        return {"id": judgement_id, "status": FAILED}
    twin = None if force else _stored_twin(row)
    if twin is not None:
        reused = Judgement()
        copy_verdict(reused, twin)
        values = {k: getattr(reused, k) for k in ("status", "error", "verdict", "fake_probability", "faces",
                                                   "scores", "explanation", "reused_from", "task_seconds")}
        finish(judgement_id, **values)
        return {"id": judgement_id, "status": values["status"], "reused_from": values["reused_from"]}

    from workers.predict import judge_video
    from workers.video import VideoError

    run_model_path = _model_path(row.run_id)
    model = cached_model(run_model_path, row.model_sha256)
    store = open_store()
    sheet_key = f"judgements/{row.id}"
    # On local disk the sheet is written in place; for an object store in a scratch folder, then put.
    explain_dir = None
    if row.explain:
        explain_dir = (get_settings().cache_path / ".sheets" / row.id) if store.remote else store.root / sheet_key
    try:
        # The video: a key of the storage root (an upload; from an object store, a temporary copy) or
        # a file of this host (`predict --queue` on local disk).
        with fetched(row.source) as video:
            result = judge_video(video, model, params=IngestParams.from_dict(row.ingest_params),
                                 threshold=row.threshold, explain_dir=explain_dir,
                                 aggregate=row.aggregation or "mean", detail=True)
    except VideoError as exc:
        record_judgement_failure(judgement_id, exc)
        return {"id": judgement_id, "status": FAILED, "error": str(exc)}
    explanation = None
    if result.get("explanation"):
        sheet = Path(result["explanation"])
        explanation = f"{sheet_key}/{sheet.name}"
        if store.remote:  # the object before the record that names it (a failed put retries the task)
            try:
                store.put_file(explanation, sheet)
            finally:
                shutil.rmtree(explain_dir, ignore_errors=True)
    status = DONE if result["label"] is not None else NO_FACE
    wrote = finish(judgement_id, status=status, verdict=result["label"], fake_probability=result["fake_probability"],
                   faces=result["faces"], scores=result["scores"], explanation=explanation,
                   task_seconds=round(time.monotonic() - started, 3))
    return {"id": judgement_id, "status": status, "verdict": result["label"], "recorded": wrote}


def _model_path(run_id: str) -> str:
    """The run's model file on this host: under DATA_DIR, or fetched from the object store into
    CACHE_DIR (once; reused while its size matches)."""
    from db.models import Run

    with session_scope() as session:
        run = session.get(Run, run_id)
        key = (run.artifacts or {})["model"]
    return str(local_copy(key))

