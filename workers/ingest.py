"""Where a video becomes face crops: sample frames, find faces, cut, write PNGs, record them."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from sqlalchemy import delete, func, insert, select, update

from db.models import Crop, Dataset, Ingest, Run, SplitMember, Video, utcnow
from db.session import session_scope
from shared.ingest_params import IngestParams
from shared.labels import DONE, FAILED, FINISHED_STATUSES, LANDMARK_COLUMNS, NO_FACE, PENDING, RUNNING
from shared.process import gone_from_this_host, process_name
from shared.settings import get_settings
from shared.storage import open_store
from workers.align import align_face
from workers.crop_pack import PACK_NAME, TMP_SUFFIX as PACK_TMP_SUFFIX, write_pack_atomically
from workers.faces import Box, Landmarks, crop_face, detect_faces, keep_largest_face
from workers.fingerprint import file_stamp
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
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode {path.name} as PNG")
    # Written by Python, not cv2.imwrite: a full disk is then an OSError saying so (ENOSPC), not "False".
    with open(tmp, "wb") as out:
        out.write(encoded.data)
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
    stamp = file_stamp(Path(root) / rel_path)  # read before decoding: the file these crops come from
    try:
        result = extract_face_crops(Path(root) / rel_path, params, detector=detector)
    except VideoError as exc:
        _record(video_id, status=FAILED, error=str(exc), rows=[], started=started, stamp=stamp, rel_path=rel_path)
        remove_orphans(folder, keep=set(), stale_tmp_s=settings.cpu_task_hard_limit_s)
        if store.remote:
            store.delete(str(folder_rel))
        return {"video": rel_path, "status": FAILED, "error": str(exc), "crops": 0, "ingest_id": ingest_id}
    try:
        rows, keep = _write_crops(result, folder, folder_rel, video_id, settings.crop_packs, store)
    except OSError as exc:
        if exc.errno not in TRANSIENT_OS_ERRNOS:
            raise
        return _leave_pending(video_id, rel_path, folder, exc, started, ingest_id)
    status = DONE if rows else NO_FACE
    if store.remote:  # the objects first: no row names one that is not there (a failed put retries the task)
        # The pack after its PNGs: training reads a pack only when it is no older than every PNG
        # of its folder (workers/training/data.py), and a fetched copy keeps the object's time.
        store.put_tree(str(folder_rel), folder, sorted(keep - {PACK_NAME}))
        if PACK_NAME in keep:
            store.put_file(f"{folder_rel}/{PACK_NAME}", folder / PACK_NAME)
    work_seconds = time.perf_counter() - work_started
    seconds = _record(video_id, status=status, error=None, rows=rows, started=started, info=result, stamp=stamp,
                      rel_path=rel_path)
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


# Errors of the machine that pass (a full disk or quota, too many open files, no memory, a network
# file system that timed out): the video is left pending for the next run, not failed for good.
TRANSIENT_OS_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                                 errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE})
OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _leave_pending(video_id: int, rel_path: str, folder: Path, exc: OSError, started: float,
                   ingest_id: int | None) -> dict:
    """A passing error while writing a video's crops: its files go (this frees the space first), its
    rows go with them, and it stays pending with the reason until a command sends it again."""
    settings = get_settings()
    remove_orphans(folder, keep=set(), stale_tmp_s=settings.cpu_task_hard_limit_s)
    reason = exc.strerror or str(exc)
    advice = "free space and run the command again" if exc.errno in OUT_OF_SPACE_ERRNOS else "run the command again"
    error = f"{reason} while writing its crops in {settings.data_dir}: left pending; {advice}"
    _record(video_id, status=PENDING, error=error, rows=[], started=started, rel_path=rel_path,
            extra={"enqueued_at": None})
    return {"video": rel_path, "status": PENDING, "error": error, "crops": 0, "ingest_id": ingest_id,
            "transient": True}


def _write_crops(result: "VideoCrops", folder: Path, folder_rel: PurePosixPath, video_id: int,
                 crop_packs: bool, store) -> tuple[list[dict], set[str]]:
    """Write a video's crops (PNGs, and their pack) and return their rows and the file names to keep."""
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
    if names and crop_packs:
        write_pack_atomically(folder / PACK_NAME, names,
                              [cv2.cvtColor(crop.image_bgr, cv2.COLOR_BGR2RGB) for crop in result.crops])
        keep.add(PACK_NAME)
    return rows, keep


def _record(video_id: int, *, status: str, error: str | None, rows: list[dict], started: float,
            info: VideoCrops | None = None, stamp: dict | None = None, rel_path: str | None = None,
            extra: dict | None = None) -> float:
    """Replace the video's crops and set its outcome in one transaction. ``stamp``: the file the crops
    come from (workers/fingerprint.py). Runs whose split held the replaced crops are told so."""
    with session_scope() as session:
        # The UPDATE comes first: it takes the row lock (PostgreSQL) or the write lock (SQLite),
        # so two deliveries of the same video replace each other's crops one after the other.
        seconds = time.perf_counter() - started
        values = dict(status=status, error=error, finished_at=utcnow(), task_seconds=seconds)
        values.update(stamp or {})
        values.update(extra or {})
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
        note_replaced_crops(session, video_id, rel_path)
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


# A run's note names at most this many of the videos whose crops it lost.
CHANGED_EXAMPLES = 5


def note_replaced_crops(session, video_id: int, rel_path: str | None) -> None:
    """Before a video's crops are replaced: every run whose split holds some of them records that its
    data changed since (`orchestrator report` says so). Its split members of those crops go with the
    crops (ON DELETE CASCADE); its model, metrics and split summary stay as they were."""
    used = session.execute(
        select(SplitMember.run_id, func.count()).join(Crop, Crop.id == SplitMember.crop_id)
        .where(Crop.video_id == video_id).group_by(SplitMember.run_id)).all()
    if not used:
        return
    if rel_path is None:
        rel_path = session.scalar(select(Video.rel_path).where(Video.id == video_id))
    now = utcnow().isoformat()
    for run_id, crops in used:
        run = session.scalar(select(Run).where(Run.id == run_id).with_for_update())
        note = dict(run.data_changed or {"videos": 0, "crops": 0, "examples": [], "first_at": now})
        note["videos"] += 1
        note["crops"] += crops
        if len(note["examples"]) < CHANGED_EXAMPLES and rel_path not in note["examples"]:
            note["examples"] = [*note["examples"], rel_path]
        note["last_at"] = now
        run.data_changed = note
