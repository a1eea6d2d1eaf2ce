"""Judgements: a video and a run's model recorded, one task on `predict`, and what the record says.

The same bytes judged by the same model file give the stored verdict again, without a task: by the
same requester, the same judgement; by another, a new record (its own id, "reused_from" the first),
so nobody sees another's records. ``force`` judges again and keeps the older records.
No TensorFlow here: the CLI and the HTTP server plan with it before any model is loaded.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import func, select, update

from db.models import Judgement
from db.session import session_scope
from shared.errors import InputError
from shared.process import command_queue, gone_from_this_host, parse_process_name
from shared.settings import get_settings
from workers.celery_app import JUDGE_TASK, PREDICT_QUEUE, app
from workers.planning.waiting import poll_until

QUEUED, RUNNING, DONE, NO_FACE, FAILED = "queued", "running", "done", "no_face", "failed"
JUDGEMENT_STATUSES = (QUEUED, RUNNING, DONE, NO_FACE, FAILED)
JUDGEMENT_FINISHED = (DONE, NO_FACE, FAILED)
_CHUNK = 1 << 20


def new_judgement_id() -> str:
    return secrets.token_hex(12)


def file_sha256(path: Path | str) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in 1 MiB pieces."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


_model_hashes: dict[tuple[str, int, int], str] = {}


def model_sha256(path: Path | str) -> str:
    """The model file's sha256, computed once per (path, size, mtime) in this process."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _model_hashes:
        _model_hashes[key] = file_sha256(path)[0]
    return _model_hashes[key]


def judging_model(run) -> dict:
    """What a judgement records of the model that judges it: a finished run's model file and how
    its verdicts are made. InputError when the model file is gone."""
    from shared.storage import MissingObjects, local_copy

    key = (run.artifacts or {}).get("model")
    try:
        path = local_copy(key) if key else None  # its key: under DATA_DIR, or fetched from the object store
    except MissingObjects:
        path = None
    if path is None or not path.is_file():
        raise InputError(f"run {run.id}: its model file {key} is missing")
    # How a video's crops become its probability: the run's own rule (workers/training/aggregate.py)
    # at the threshold it chose on validation for that rule.
    rule = run.config.get("aggregate", "mean")
    stored = ((run.metrics or {}).get("aggregations") or {}).get(rule) or {}
    threshold = float(stored.get("threshold", run.config.get("threshold", 0.5)))
    return {"run_id": run.id, "backbone": run.config["backbone"], "threshold": threshold,
            "aggregation": rule, "model_sha256": model_sha256(path),
            "ingest_params": run.config.get("ingest") or {}}


def _owner(api_key_id: int | None):
    return Judgement.api_key_id.is_(None) if api_key_id is None else Judgement.api_key_id == api_key_id


def submit_judgement(*, source: Path | str, sha256: str, size: int, file_name: str | None, model: dict,
                     api_key_id: int | None, requested_by: str, explain: bool = False,
                     force: bool = False) -> tuple[dict, bool]:
    """(the judgement's report, whether a task must judge it). Recorded before it is sent."""
    same = (Judgement.video_sha256 == sha256, Judgement.model_sha256 == model["model_sha256"],
            Judgement.status != FAILED)
    if explain:
        same += (Judgement.explain.is_(True),)
    with session_scope() as session:
        if not force:
            mine = session.scalar(select(Judgement).where(*same, _owner(api_key_id))
                                  .order_by(Judgement.created_at.desc()).limit(1))
            if mine is not None:
                return report(mine), False
            twin = session.scalar(select(Judgement).where(*same, Judgement.status.in_((DONE, NO_FACE)))
                                  .order_by(Judgement.finished_at.desc()).limit(1))
        else:
            twin = None
        row = Judgement(id=new_judgement_id(), video_sha256=sha256, video_size=size, file_name=file_name,
                        source=str(source), api_key_id=api_key_id, requested_by=requested_by, explain=explain,
                        run_id=model["run_id"], backbone=model["backbone"], threshold=model["threshold"],
                        aggregation=model["aggregation"], model_sha256=model["model_sha256"],
                        ingest_params=model["ingest_params"], status=QUEUED, created_at=_now())
        if twin is not None:
            copy_verdict(row, twin)
        session.add(row)
        session.flush()
        return report(row), twin is None


def copy_verdict(row: Judgement, twin: Judgement) -> None:
    """``row`` finished with the stored verdict of ``twin`` (same bytes, same model)."""
    for name in ("status", "error", "verdict", "fake_probability", "faces", "scores", "explanation"):
        setattr(row, name, getattr(twin, name))
    row.reused_from = twin.reused_from or twin.id
    row.started_at = row.finished_at = _now()
    row.task_seconds = 0.0


def dispatch_judgement(judgement_id: str, video: str = "", force: bool = False) -> str:
    """One task on `predict` (the route is in workers/celery_app.py). ``video`` is for Flower."""
    result = app.send_task(JUDGE_TASK, kwargs={"judgement_id": judgement_id, "video": video, "force": force})
    with session_scope() as session:
        session.execute(update(Judgement).where(Judgement.id == judgement_id).values(task_id=result.id))
    return result.id


def mark_unsent(judgement_id: str, error: str) -> None:
    """A judgement whose message could not be sent (broker down) is failed, not left queued for
    ever: sending the same video again makes a new one (failed judgements give no stored verdict)."""
    with session_scope() as session:
        session.execute(update(Judgement).where(Judgement.id == judgement_id, Judgement.status == QUEUED)
                        .values(status=FAILED, error=f"not sent: {error}"[:2000], finished_at=_now()))


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite gives naive datetimes back; they were written in UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def report(row: Judgement) -> dict:
    """What `predict --queue --json` prints and `GET /v1/judgements/{id}` answers."""
    created, finished = row.created_at, row.finished_at
    waited = None
    if created is not None and finished is not None:
        waited = round((_aware(finished) - _aware(created)).total_seconds(), 3)
    return {
        "id": row.id, "status": row.status, "error": row.error, "file_name": row.file_name,
        "video_sha256": row.video_sha256, "video_size": row.video_size,
        "verdict": row.verdict, "fake_probability": row.fake_probability, "threshold": row.threshold,
        "faces": row.faces, "scores": row.scores or [],
        "model": {"run_id": row.run_id, "backbone": row.backbone, "aggregation": row.aggregation,
                  "sha256": row.model_sha256},
        "ingest_params": row.ingest_params, "requested_by": row.requested_by,
        "explain": bool(row.explain), "explanation": row.explanation, "reused_from": row.reused_from,
        "attempts": row.attempts, "worker": row.worker,
        "created_at": _iso(created), "started_at": _iso(row.started_at), "finished_at": _iso(finished),
        "seconds_to_verdict": waited, "task_seconds": row.task_seconds,
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def find_judgement(judgement_id: str, api_key_id: int | None = None, *, any_owner: bool = False) -> dict | None:
    """The judgement's report, or None when there is none that this requester may see."""
    with session_scope() as session:
        query = select(Judgement).where(Judgement.id == judgement_id)
        if not any_owner:
            query = query.where(_owner(api_key_id))
        row = session.scalar(query)
        return report(row) if row is not None else None


def list_judgements(api_key_id: int | None, *, limit: int = 50, before: str | None = None) -> list[dict]:
    """The requester's judgements, newest first; ``before`` an id: those older than it."""
    with session_scope() as session:
        query = select(Judgement).where(_owner(api_key_id))
        if before:
            anchor = session.scalar(select(Judgement).where(Judgement.id == before, _owner(api_key_id)))
            if anchor is None:
                raise InputError(f"no judgement {before!r}")
            query = query.where((Judgement.created_at < anchor.created_at)
                                | ((Judgement.created_at == anchor.created_at) & (Judgement.id < anchor.id)))
        rows = session.scalars(query.order_by(Judgement.created_at.desc(), Judgement.id.desc()).limit(limit))
        return [report(row) for row in rows]


def judgement_states(ids: list[str]) -> dict[str, str]:
    with session_scope() as session:
        return dict(session.execute(select(Judgement.id, Judgement.status).where(Judgement.id.in_(ids))).all())


def wait_for_judgements(ids: list[str], *, on_tick: Callable[[dict[str, str]], None] | None = None,
                        check: Callable[[], None] | None = None,
                        on_db_retry: Callable[[Exception], None] | None = None, poll_s: float = 0.25) -> dict:
    """Block until every judgement has finished; ``on_tick`` sees {id: status}."""
    if not ids:
        return {}
    return poll_until(lambda: judgement_states(ids),
                      lambda states: all(s in JUDGEMENT_FINISHED for s in states.values()),
                      on_tick=on_tick, check=check, on_db_retry=on_db_retry, poll_s=poll_s)


def orphaned_judgements() -> list[tuple[str, str]]:
    """(id, file name) of judgements marked running by a process of this host that no longer runs,
    put back to queued. The filesystem broker (embedded mode) has no redelivery: whoever holds the
    local workers sends them again. Redis redelivers by itself."""
    orphans = []
    with session_scope() as session:
        rows = session.execute(select(Judgement.id, Judgement.file_name, Judgement.worker)
                               .where(Judgement.status == RUNNING)).all()
        for row in rows:
            if gone_from_this_host(*parse_process_name(row.worker)):
                orphans.append((row.id, row.file_name or ""))
        if orphans:
            session.execute(update(Judgement).where(Judgement.id.in_([o[0] for o in orphans]),
                                                    Judgement.status == RUNNING).values(status=QUEUED))
    return orphans


def queued_judgements() -> list[tuple[str, str]]:
    """(id, file name) of every queued judgement, oldest first: an embedded server sends them again
    at start (its broker folder was emptied with the local workers that read it)."""
    with session_scope() as session:
        return [tuple(row) for row in session.execute(
            select(Judgement.id, Judgement.file_name).where(Judgement.status == QUEUED)
            .order_by(Judgement.created_at))]


def judgement_counts() -> dict[str, int]:
    with session_scope() as session:
        found = dict(session.execute(select(Judgement.status, func.count()).group_by(Judgement.status)).all())
    return {status: found.get(status, 0) for status in JUDGEMENT_STATUSES}


def verdict_latencies() -> list[float]:
    """Seconds from record to verdict of every judged (not reused) judgement: the latency histogram."""
    with session_scope() as session:
        rows = session.execute(select(Judgement.created_at, Judgement.finished_at).where(
            Judgement.status.in_((DONE, NO_FACE)), Judgement.reused_from.is_(None),
            Judgement.finished_at.is_not(None))).all()
    return [(_aware(f) - _aware(c)).total_seconds() for c, f in rows]


def queue_depth() -> int | None:
    """Messages waiting on the `predict` queue; None when the broker cannot say."""
    settings = get_settings()
    if settings.broker_url.startswith(("redis://", "rediss://")):
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            # kombu keeps one list per priority step: "predict", "predict\x06\x163", ...
            return sum(client.llen(key) for key in client.keys(f"{PREDICT_QUEUE}*") if client.type(key) == b"list")
    if settings.broker_url.startswith("filesystem"):
        folder = settings.broker_dir / "queue"
        if not folder.is_dir():
            return 0
        queue = command_queue(PREDICT_QUEUE)  # embedded: the serving command's own queue
        return sum(1 for entry in folder.iterdir() if entry.name.endswith(f".{queue}.msg"))
    return None
