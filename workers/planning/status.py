"""What the database says: where ingest stands, and every crop as rows for other tools."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import func, select

from db.models import Crop, Video
from db.session import session_scope
from shared.labels import FAILED, LABEL_NAMES, VIDEO_STATUSES

# A video decoded to less than this share of the frames its container announced gets a warning.
SHORT_DECODE = 0.9

EXPORT_COLUMNS = (
    "video", "label", "official_test", "status", "frame_index", "timestamp_s",
    "face_index", "x", "y", "w", "h", "confidence", "crop_path",
)


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
        "warnings": warnings,
    }


def export_rows(batch_size: int = 5000) -> Iterator[dict]:
    """One row per crop, in a stable order, streamed so a large database does not fill memory."""
    query = (
        select(
            Video.rel_path, Video.label, Video.official_test, Video.status, Crop.frame_index,
            Crop.timestamp_s, Crop.face_index, Crop.x, Crop.y, Crop.w, Crop.h, Crop.confidence, Crop.crop_path,
        )
        .join(Video, Crop.video_id == Video.id)
        .order_by(Video.rel_path, Crop.frame_index, Crop.face_index)
        .execution_options(yield_per=batch_size)
    )
    with session_scope() as session:
        for row in session.execute(query):
            yield dict(zip(EXPORT_COLUMNS, row))
