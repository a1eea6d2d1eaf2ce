"""`ingest --then-train`: start training exactly once, the moment the last video is finished.

The barrier lives in the database, not in a Celery chord (chords on Redis lose callbacks and
miscount when a task runs twice). Every video task calls ``start_training_when_done`` after
recording its outcome; the one that finds nothing unfinished claims the ingest with a
conditional UPDATE, so however many tasks get there, one run starts.
"""

from __future__ import annotations

from sqlalchemy import select, update

from db.models import Dataset, Ingest, Run, Video
from db.session import session_scope
from shared.errors import InputError
from shared.labels import PENDING, RUN_FAILED, RUNNING
from workers.planning.runs import dispatch_run, new_run_id, plan_run


def _any_unfinished(session, dataset_id: int) -> bool:
    # EXISTS on the (dataset_id, status) index: called after every video, it must stay cheap.
    return session.scalar(select(
        select(Video.id).where(Video.dataset_id == dataset_id, Video.status.in_([PENDING, RUNNING])).exists()
    ))


def start_training_when_done(ingest_id: int | None) -> str | None:
    """The run id this call started, or None (not asked for, not finished yet, already started)."""
    if ingest_id is None:
        return None
    with session_scope() as session:
        ingest = session.get(Ingest, ingest_id)
        if ingest is None or not ingest.then_train or ingest.train_run_id is not None:
            return None
        if _any_unfinished(session, ingest.dataset_id):
            return None
        options = dict(ingest.train_options or {})
        # The run trains on the dataset this ingest finished, whatever else the database holds.
        dataset = session.scalar(select(Dataset.name).where(Dataset.id == ingest.dataset_id))
    run_id = new_run_id()
    with session_scope() as session:
        claimed = session.execute(
            update(Ingest).where(Ingest.id == ingest_id, Ingest.train_run_id.is_(None)).values(train_run_id=run_id)
        ).rowcount
    if not claimed:
        return None
    try:
        plan_run(options, run_id=run_id, datasets=[dataset])
    except InputError as exc:
        # Recorded as a failed run, so `orchestrator report` says why no model came out.
        with session_scope() as session:
            session.add(Run(id=run_id, status=RUN_FAILED, config=options, error=str(exc)))
        return run_id
    except BaseException:
        # Anything else (the database blinked): give the claim back, so that the retried task,
        # or the next one to finish, starts the run.
        with session_scope() as session:
            session.execute(update(Ingest).where(Ingest.id == ingest_id, Ingest.train_run_id == run_id)
                            .values(train_run_id=None))
        raise
    with session_scope() as session:
        config = session.get(Run, run_id).config
    dispatch_run(run_id, config)
    return run_id


def previous_training(dataset_id: int) -> str | None:
    """The run an earlier `--then-train` ingest of this dataset started, if any."""
    with session_scope() as session:
        return session.scalar(
            select(Ingest.train_run_id)
            .where(Ingest.dataset_id == dataset_id, Ingest.train_run_id.is_not(None))
            .order_by(Ingest.id.desc()).limit(1)
        )


def ingest_run_id(ingest_id: int) -> str | None:
    with session_scope() as session:
        return session.scalar(select(Ingest.train_run_id).where(Ingest.id == ingest_id))


def ingest_of_video(video_id: int) -> int | None:
    with session_scope() as session:
        return session.scalar(select(Video.ingest_id).where(Video.id == video_id))
