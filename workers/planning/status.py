"""What the database says: its datasets, where ingest stands, and every crop as rows for other tools."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import func, select

from db.models import Crop, Dataset, Video
from db.session import session_scope
from shared.errors import InputError
from shared.labels import FAILED, LABEL_NAMES, LANDMARK_COLUMNS, PENDING, VIDEO_STATUSES

# A video decoded to less than this share of the frames its container announced gets a warning.
SHORT_DECODE = 0.9

EXPORT_COLUMNS = (
    "video", "label", "official_test", "status", "frame_index", "timestamp_s",
    "face_index", "x", "y", "w", "h", "confidence", "crop_path", *LANDMARK_COLUMNS, "method",
)
# With several datasets in the database (and no --dataset), rows also say which one.
DATASET_COLUMN = "dataset"


def held_videos():
    """Where-clause of the videos a passing error (a full disk) left pending: workers/ingest.py's
    _leave_pending records the reason and clears enqueued_at; sending a video again sets it."""
    return (Video.status == PENDING) & Video.error.is_not(None) & Video.enqueued_at.is_(None)


def dataset_names() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(Dataset.name).order_by(Dataset.id)))


def find_dataset_id(name: str) -> int:
    """The id of the dataset called ``name``; InputError naming the known ones otherwise."""
    with session_scope() as session:
        dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == name))
    if dataset_id is None:
        known = dataset_names()
        raise InputError(f"no dataset {name!r}: " + (f"known: {', '.join(known)}" if known
                                                      else "`orchestrator ingest PATH` records one"))
    return dataset_id


def list_datasets() -> list[dict]:
    """The objects `orchestrator datasets --json` prints, in the order they were recorded."""
    with session_scope() as session:
        datasets = session.execute(select(Dataset.id, Dataset.name, Dataset.format, Dataset.root, Dataset.params)
                                   .order_by(Dataset.id)).all()
        videos = {(d, label): n for d, label, n in session.execute(
            select(Video.dataset_id, Video.label, func.count()).group_by(Video.dataset_id, Video.label))}
        official = dict(session.execute(select(Video.dataset_id, func.count()).where(Video.official_test)
                                        .group_by(Video.dataset_id)).all())
        crops = dict(session.execute(select(Video.dataset_id, func.count(Crop.id)).join(Crop, Crop.video_id == Video.id)
                                     .group_by(Video.dataset_id)).all())
        methods = {}
        for d, method, n in session.execute(select(Video.dataset_id, Video.method, func.count())
                                            .where(Video.method.is_not(None)).group_by(Video.dataset_id, Video.method)):
            methods.setdefault(d, {})[method] = n
    rows = []
    for d in datasets:
        by_label = {name: videos.get((d.id, label), 0) for label, name in LABEL_NAMES.items()}
        row = {"name": d.name, "format": d.format, "root": d.root, "videos": sum(by_label.values()),
               "crops": crops.get(d.id, 0), "by_label": by_label, "official_test_videos": official.get(d.id, 0),
               "params": d.params}
        if d.id in methods:
            row["methods"] = methods[d.id]
        rows.append(row)
    return rows


def ingest_status(dataset_id: int | None = None) -> dict:
    """The object `orchestrator status --json` prints."""
    def scoped(query):
        return query.where(Video.dataset_id == dataset_id) if dataset_id is not None else query

    with session_scope() as session:
        by_status = dict.fromkeys(VIDEO_STATUSES, 0)
        for status, count in session.execute(scoped(select(Video.status, func.count()).group_by(Video.status))):
            by_status[status] = count
        by_label = {name: 0 for name in LABEL_NAMES.values()}
        for label, count in session.execute(scoped(select(Video.label, func.count()).group_by(Video.label))):
            by_label[LABEL_NAMES[label]] = count
        crops = session.scalar(scoped(select(func.count(Crop.id)).join(Video, Crop.video_id == Video.id)))
        failures = [
            {"video": rel_path, "error": error or ""}
            for rel_path, error in session.execute(
                scoped(select(Video.rel_path, Video.error).where(Video.status == FAILED).order_by(Video.rel_path))
            )
        ]
        # Left pending by a passing error (a full disk): they wait for the command to be run again.
        stopped = [
            {"video": rel_path, "error": error}
            for rel_path, error in session.execute(
                scoped(select(Video.rel_path, Video.error).where(held_videos()).order_by(Video.rel_path)))
        ]
        # Decoding stopped well before the frames the container announced: a damaged video.
        short = (Video.frames_expected > 0) & (Video.frames_decoded < Video.frames_expected * SHORT_DECODE)
        warnings = [
            {"video": rel_path, "warning": f"decoded {decoded} of {expected} frames (damaged?)"}
            for rel_path, decoded, expected in session.execute(
                scoped(select(Video.rel_path, Video.frames_decoded, Video.frames_expected)
                       .where(Video.status != FAILED, short).order_by(Video.rel_path)))
        ]
    return {
        "videos": {"total": sum(by_status.values()), "by_status": by_status, "by_label": by_label},
        "crops": crops or 0,
        "failures": failures,
        "stopped": stopped,
        "warnings": warnings,
    }


def export_columns(dataset_id: int | None = None) -> tuple[str, ...]:
    """EXPORT_COLUMNS, with ``dataset`` first when rows may come from several datasets."""
    if dataset_id is None and len(dataset_names()) > 1:
        return (DATASET_COLUMN, *EXPORT_COLUMNS)
    return EXPORT_COLUMNS


def export_rows(dataset_id: int | None = None, batch_size: int = 5000) -> Iterator[dict]:
    """One row per crop, in a stable order, streamed so a large database does not fill memory.
    ``dataset_id`` None: every dataset (with a ``dataset`` column when there are several)."""
    columns = export_columns(dataset_id)
    selected = [Video.rel_path, Video.label, Video.official_test, Video.status, Crop.frame_index,
                Crop.timestamp_s, Crop.face_index, Crop.x, Crop.y, Crop.w, Crop.h, Crop.confidence, Crop.crop_path,
                *(getattr(Crop, column) for column in LANDMARK_COLUMNS), Video.method]
    if columns[0] == DATASET_COLUMN:
        selected.insert(0, Dataset.name)
    query = (
        select(*selected)
        .join(Video, Crop.video_id == Video.id)
        .join(Dataset, Video.dataset_id == Dataset.id)
        .order_by(Dataset.id, Video.rel_path, Crop.frame_index, Crop.face_index)
        .execution_options(yield_per=batch_size)
    )
    if dataset_id is not None:
        query = query.where(Video.dataset_id == dataset_id)
    with session_scope() as session:
        for row in session.execute(query):
            yield dict(zip(columns, row))
