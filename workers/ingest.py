"""Where a video becomes face crops: sample frames, find faces, cut, write PNGs, record them."""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from sqlalchemy import delete, insert, select, update

from db.models import Crop, Dataset, Ingest, Video, utcnow
from db.session import session_scope
from shared.ingest_params import IngestParams
from shared.labels import DONE, FAILED, FINISHED_STATUSES, LANDMARK_COLUMNS, NO_FACE, RUNNING
from shared.process import gone_from_this_host, process_name
from shared.settings import get_settings
from shared.storage import open_store
from workers.align import align_face
from workers.crop_pack import PACK_NAME, TMP_SUFFIX as PACK_TMP_SUFFIX, write_pack_atomically
from workers.faces import Box, Landmarks, crop_face, detect_faces, keep_largest_face
from workers.video import (
    EvenFrames, SampledFrames, SeekMismatch, VideoError, VideoInfo, index_stream, open_video, sampled_indices,
)


@dataclass
class FaceCrop:
    frame_index: int
    timestamp_s: float
    face_index: int
    box: Box
    confidence: float
    image_bgr: np.ndarray
    # MTCNN's five (x, y) points in frame pixels (workers.faces.LANDMARK_NAMES order), whether or not
    # the crop was aligned with them; None when the detector gave none.
    landmarks: Landmarks | None = None


@dataclass
class VideoCrops:
    info: VideoInfo
    frames_walked: int
    frames_sampled: int  # frames decoded and searched for faces
    crops: list[FaceCrop] = field(default_factory=list)
    # Frames the sampling planned from the frame count; more than frames_sampled when the container's
    # count was too high (the video ended first). None: every-N-seconds sampling with no reported count.
    frames_expected: int | None = None
    frame_count_walked: bool = False  # the count was unknown (0): the video was walked once to count it


def extract_face_crops(path: Path | str, params: IngestParams, detector=None) -> VideoCrops:
    """Every face crop of one video file. Raises VideoError when the file is not a readable video."""
    capture, info = open_video(path)
    index = index_stream(path) if params.seek else None
    try:
        return _extract(capture, info, params, detector, index)
    except SeekMismatch:
        capture, info = open_video(path)  # a seek landed elsewhere: read this video by walking it
        return _extract(capture, info, params, detector, None)


def _extract(capture, info: VideoInfo, params: IngestParams, detector, index) -> VideoCrops:
    crops: list[FaceCrop] = []
    if params.frames is not None:
        frames = EvenFrames(capture, info.fps, params.frames, info.reported_frames)
    else:
        frames = SampledFrames(capture, info.fps, params.every, index)
    sampled = 0
    batch = []

    def flush():
        faces_per_frame = detect_faces(
            [f.image_bgr for f in batch],
            min_confidence=params.min_confidence,
            max_side=params.detect_max_side,
            min_face_fraction=params.min_face_fraction,
            detector=detector,
            compiled=params.compiled_detector,
        )
        for frame, faces in zip(batch, faces_per_frame):
            if params.largest_face:
                faces = keep_largest_face(faces)
            for face_index, face in enumerate(faces):
                if params.align:
                    image = align_face(frame.image_bgr, face.box, face.landmarks, params.margin, params.size)
                else:
                    image = crop_face(frame.image_bgr, face.box, params.margin, params.size)
                crops.append(
                    FaceCrop(
                        frame_index=frame.index,
                        timestamp_s=round(frame.timestamp_s, 3),
                        face_index=face_index,
                        box=face.box,
                        confidence=face.confidence,
                        image_bgr=image,
                        landmarks=face.landmarks,
                    )
                )
        batch.clear()

    try:
        for frame in frames:
            sampled += 1
            batch.append(frame)
            if len(batch) >= params.detect_batch:
                flush()
        if batch:
            flush()
    finally:
        capture.release()
    if sampled == 0:
        raise VideoError("no frame could be decoded")
    if frames.frames_walked <= 1 and info.reported_frames <= 0:  # e.g. a PNG renamed .mp4
        raise VideoError("not a video: a single still image")
    if isinstance(frames, EvenFrames):
        expected, walked_to_count = frames.frames_expected, frames.count_walked
    else:
        expected = (len(sampled_indices(info.reported_frames, info.fps, params.every))
                    if info.reported_frames > 0 else None)
        walked_to_count = False
    return VideoCrops(info=info, frames_walked=frames.frames_walked, frames_sampled=sampled, crops=crops,
                      frames_expected=expected, frame_count_walked=walked_to_count)


def crop_dir_for(dataset_id: int, rel_path: str) -> PurePosixPath:
    """Folder of a video's crops, relative to DATA_DIR: crops/<dataset>/<Folder>/<video stem>."""
    rel = PurePosixPath(rel_path)
    return PurePosixPath("crops") / str(dataset_id) / rel.parent / rel.stem


def crop_file_name(frame_index: int, face_index: int) -> str:
    return f"f{frame_index:06d}_{face_index:02d}.png"


TMP_SUFFIX = ".tmp.png"
_TMP_SUFFIXES = (TMP_SUFFIX, PACK_TMP_SUFFIX)


def write_png_atomically(path: Path, image: np.ndarray) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see half a PNG.
    The temporary name says which process writes it (``.<stem>.<host>.<pid>.tmp.png``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{socket.gethostname()}.{os.getpid()}{TMP_SUFFIX}")
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"cannot write {tmp}")
    os.replace(tmp, path)


def _writer_is_gone(tmp_name: str) -> bool:
    """True when a temporary PNG was left by a process of this host that no longer runs (or by this
    process): nobody will ever rename it. A writer on another host cannot be checked."""
    suffix = next(s for s in _TMP_SUFFIXES if tmp_name.endswith(s))
    host_pid = tmp_name[1:-len(suffix)].split(".", 1)[-1]  # "<host>.<pid>"
    host, _, pid = host_pid.rpartition(".")
    writer = int(pid) if pid.isdigit() else None
    return (writer == os.getpid() and host == socket.gethostname()) or gone_from_this_host(host, writer)


def remove_orphans(folder: Path, keep: set[str], stale_tmp_s: float) -> int:
    """Delete files in a video's crop folder that the recorded crops do not name."""
    if not folder.is_dir():
        return 0
    removed = 0
    now = time.time()
    for entry in folder.iterdir():
        if entry.name in keep or not entry.is_file():
            continue
        if (entry.name.endswith(_TMP_SUFFIXES) and now - entry.stat().st_mtime < stale_tmp_s
                and not _writer_is_gone(entry.name)):
            continue  # another delivery of this task may be writing it right now
        entry.unlink(missing_ok=True)
        removed += 1
    return removed


def landmark_values(landmarks) -> dict:
    """The crop row's landmark columns (None each when the detector gave no landmarks)."""
    if landmarks is None:
        return dict.fromkeys(LANDMARK_COLUMNS)
    flat = [round(float(v), 2) for point in landmarks for v in point]
    return dict(zip(LANDMARK_COLUMNS, flat))


def process_video(video_id: int, params: IngestParams, *, force: bool = False, detector=None) -> dict:
    """Turn one registered video into recorded crops. Safe to run twice on the same video:
    the second run replaces the first's rows in one transaction and leaves one set of files.

    Returns a summary: {"video", "status", "crops", "seconds", ...}. A video that cannot be
    decoded is recorded as failed (not raised); database errors are raised for the caller to retry.
    """
    settings = get_settings()
    started = time.perf_counter()
    with session_scope() as session:
        # One UPDATE claims the video and says what we need of it: it runs first, so it also takes
        # the row lock (PostgreSQL) or the write lock (SQLite) before anything is read.
        claim = update(Video).where(Video.id == video_id)
        if not force:
            claim = claim.where(Video.status.not_in(FINISHED_STATUSES))
        claimed = session.execute(
            claim.values(status=RUNNING, attempts=Video.attempts + 1, started_at=utcnow(), worker=process_name(),
                         error=None)
            .returning(Video.rel_path, Video.dataset_id, Video.ingest_id)
        ).first()
        if claimed is None:
            video = session.get(Video, video_id)
            if video is None:
                return {"video_id": video_id, "status": "unknown"}
            return {"video": video.rel_path, "status": video.status, "skipped": True, "ingest_id": video.ingest_id}
        rel_path, dataset_id = claimed.rel_path, claimed.dataset_id
        # With the dataset's root: the ingest whose --then-train barrier this video must check once
        # finished (None when no barrier waits, so such videos cost no extra round trip later).
        waiting = (Ingest.id == claimed.ingest_id) & Ingest.then_train & Ingest.train_run_id.is_(None)
        root, ingest_id = session.execute(
            select(Dataset.root, Ingest.id).outerjoin(Ingest, waiting).where(Dataset.id == dataset_id)
        ).one()

    folder_rel = crop_dir_for(dataset_id, rel_path)
    folder = settings.data_dir / folder_rel
    store = open_store()  # DATA_DIR itself, or an object store: then DATA_DIR/crops is this host's staging area
    work_started = time.perf_counter()
    try:
        result = extract_face_crops(Path(root) / rel_path, params, detector=detector)
    except VideoError as exc:
        _record(video_id, status=FAILED, error=str(exc), rows=[], started=started)
        remove_orphans(folder, keep=set(), stale_tmp_s=settings.cpu_task_hard_limit_s)
        if store.remote:
            store.delete(str(folder_rel))
        return {"video": rel_path, "status": FAILED, "error": str(exc), "crops": 0, "ingest_id": ingest_id}

    # A pack must never describe other PNGs than the ones on disk: drop the old one before they change.
    (folder / PACK_NAME).unlink(missing_ok=True)
    if store.remote:
        store.delete(f"{folder_rel}/{PACK_NAME}")
    rows, names = [], []
    for crop in result.crops:
        name = crop_file_name(crop.frame_index, crop.face_index)
        write_png_atomically(folder / name, crop.image_bgr)
        names.append(name)
        rows.append(
            dict(
                video_id=video_id,
                frame_index=crop.frame_index,
                timestamp_s=crop.timestamp_s,
                face_index=crop.face_index,
                x=crop.box.x,
                y=crop.box.y,
                w=crop.box.w,
                h=crop.box.h,
                confidence=crop.confidence,
                crop_path=str(folder_rel / name),
                **landmark_values(crop.landmarks),
            )
        )
    keep = set(names)
    if names and settings.crop_packs:
        write_pack_atomically(folder / PACK_NAME, names,
                              [cv2.cvtColor(crop.image_bgr, cv2.COLOR_BGR2RGB) for crop in result.crops])
        keep.add(PACK_NAME)
    status = DONE if rows else NO_FACE
    if store.remote:  # the objects first: no row names one that is not there (a failed put retries the task)
        store.put_tree(str(folder_rel), folder, keep)
    work_seconds = time.perf_counter() - work_started
    seconds = _record(video_id, status=status, error=None, rows=rows, started=started, info=result)
    remove_orphans(folder, keep=keep, stale_tmp_s=settings.cpu_task_hard_limit_s)
    if store.remote:  # keys are deterministic: a redelivery overwrote them; drop what it no longer wrote
        store.prune(str(folder_rel), keep)
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "video": rel_path,
        "status": status,
        "crops": len(rows),
        "frames_sampled": result.frames_sampled,
        "frames_expected": result.frames_expected,
        "seconds": round(seconds, 3),
        "work_seconds": round(work_seconds, 3),  # decode, detect, crop, write PNGs: no database
        "ingest_id": ingest_id,
    }


def _record(video_id: int, *, status: str, error: str | None, rows: list[dict], started: float,
            info: VideoCrops | None = None) -> float:
    """Replace the video's crops and set its outcome in one transaction."""
    with session_scope() as session:
        # The UPDATE comes first: it takes the row lock (PostgreSQL) or the write lock (SQLite),
        # so two deliveries of the same video replace each other's crops one after the other.
        seconds = time.perf_counter() - started
        values = dict(status=status, error=error, finished_at=utcnow(), task_seconds=seconds)
        if info is not None:
            values.update(
                fps=info.info.fps,
                width=info.info.width,
                height=info.info.height,
                frames_decoded=info.frames_walked,
                frames_expected=info.info.reported_frames if info.info.reported_frames > 0 else None,
                frames_sampled=info.frames_sampled,
            )
        session.execute(update(Video).where(Video.id == video_id).values(**values))
        session.execute(delete(Crop).where(Crop.video_id == video_id))
        if rows:
            session.execute(insert(Crop), rows)
    return seconds


def record_failure(video_id: int, exc: BaseException) -> None:
    """A video whose task raised something unexpected ends failed with the error, never running."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    _record(video_id, status=FAILED, error=f"{type(exc).__name__}: {message}"[:2000], rows=[],
            started=time.perf_counter())


def record_timeout(video_id: int, limit_s: float) -> None:
    """A video that outlived the task's time limit is recorded as failed, not retried."""
    _record(video_id, status=FAILED, error=f"took longer than the {limit_s:.0f} s time limit", rows=[],
            started=time.perf_counter())
