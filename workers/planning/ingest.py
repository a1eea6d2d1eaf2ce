"""Planning an ingest: record the dataset's videos, decide which need work, enqueue one task each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

from kombu.exceptions import KombuError
from sqlalchemy import func, insert, or_, select, update

from db.models import Crop, Dataset, Ingest, Video, utcnow
from db.session import session_scope
from shared.errors import InputError, WorkFailed
from shared.labels import FAILED, FINISHED_STATUSES, PENDING, RUNNING
from shared.settings import get_settings
from workers.celery_app import PROCESS_VIDEO_TASK, app
from workers.datasets import DatasetScan
from workers.planning.status import held_videos
from workers.planning.waiting import poll_until


# Rows or ids per statement: PostgreSQL takes at most 65,535 bound parameters in one.
CHUNK = 5000


def chunked(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def insert_ignoring_duplicates(session, model):
    """INSERT ... ON CONFLICT DO NOTHING (PostgreSQL and SQLite): rows another process inserted a
    moment earlier are left as they are, not an IntegrityError."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(model).on_conflict_do_nothing()


@dataclass
class IngestPlan:
    dataset_id: int
    ingest_id: int
    new_videos: int
    total_videos: int
    to_enqueue: list[tuple[int, str]] = field(default_factory=list)  # (video id, rel path)
    retried_failed: int = 0
    dataset_name: str = ""
    changed_videos: int = 0  # finished videos whose file is another one now: done again


# Parameters that change what a crop looks like: a dataset's crops are all made with the same ones.
# (detect_batch only groups the detector's calls.)
CROP_PARAMS = ("every", "frames", "min_confidence", "margin", "size", "detect_max_side", "largest_face", "align")


def _changed_params(recorded: dict | None, params: dict) -> list[str]:
    if not recorded:
        return []
    return [f"{key} {recorded.get(key)} -> {params.get(key)}" for key in CROP_PARAMS
            if key in recorded and recorded.get(key) != params.get(key)]


def find_or_add_dataset(session, scan: DatasetScan, name: str | None, params: dict,
                        scan_options: dict | None = None) -> Dataset:
    """The dataset of ``scan.root``, recorded under ``name`` (default: the folder's name).
    InputError (nothing written) when the name belongs to another folder, the folder is recorded
    under another name or format, or its crops were made with other parameters."""
    root, fmt = str(scan.root), scan.format
    dataset = session.scalar(select(Dataset).where(Dataset.root == root))
    if dataset is not None:
        if name and name != dataset.name:
            raise InputError(f"{root} is already dataset {dataset.name!r}: use --name {dataset.name} or leave it out")
        if fmt != dataset.format:
            raise InputError(f"{root} is already dataset {dataset.name!r} read as {dataset.format}, not {fmt}: "
                             f"use --format {dataset.format}")
        has_crops = session.scalar(select(select(Crop.id).join(Video, Crop.video_id == Video.id)
                                          .where(Video.dataset_id == dataset.id).exists()))
        changed = _changed_params(dataset.params, params) if has_crops else []
        if changed:
            raise InputError(f"dataset {dataset.name!r} has crops made with other parameters "
                             f"({', '.join(changed)}): ingest it with the same options")
        dataset.params = params
        if scan_options:
            dataset.scan_options = scan_options
        return dataset
    name = name or scan.root.name
    # Two first ingests of one folder at once: both insert, one row wins, both read it.
    session.execute(insert_ignoring_duplicates(session, Dataset).values(
        root=root, name=name, format=fmt, params=params, scan_options=scan_options, created_at=utcnow()))
    dataset = session.scalar(select(Dataset).where(Dataset.root == root))
    if dataset is None:  # nothing inserted: the name belongs to another folder
        other = session.scalar(select(Dataset.root).where(Dataset.name == name))
        raise InputError(f"a dataset named {name!r} already exists ({other}): choose another with --name")
    return dataset


def recorded_dataset(root: str) -> dict | None:
    """What the database knows of the dataset in folder ``root``: {"name", "format", "params",
    "scan_options"}, or None."""
    from pathlib import Path

    path = Path(root).expanduser()
    if not path.is_dir():
        return None
    with session_scope() as session:
        dataset = session.scalar(select(Dataset).where(Dataset.root == str(path.resolve())))
        if dataset is None:
            return None
        return {"name": dataset.name, "format": dataset.format, "params": dataset.params,
                "scan_options": dataset.scan_options or {}}


def register_videos(scan: DatasetScan, params: dict, *, retry_failed: bool, embedded: bool,
                    then_train: bool = False, train_options: dict | None = None, name: str | None = None,
                    scan_options: dict | None = None, queued: set[int] | None = None) -> IngestPlan:
    """Record every scanned video (nothing already recorded is duplicated or lost) and pick
    the videos this ingest must process (the scan's format and each video's method are recorded).
    ``queued``: the videos whose message the broker holds (queued_video_ids); a pending video
    outside it is sent again at once."""
    settings = get_settings()
    with session_scope() as session:
        dataset = find_or_add_dataset(session, scan, name, params, scan_options)
        # Plain rows, not ORM objects: a full Celeb-DF is 6.5k videos, a hundredfold one 650k.
        known = {row.rel_path: row for row in session.execute(
            select(Video.rel_path, Video.id, Video.official_test).where(Video.dataset_id == dataset.id))}
        new_rows = [
            dict(dataset_id=dataset.id, rel_path=e.rel_path, folder=e.folder, label=e.label,
                 source_identity=e.identity.source, target_identity=e.identity.target,
                 source_video=e.identity.source_video, group_key=e.identity.group_key,
                 official_test=e.official_test, method=e.method, status=PENDING, attempts=0)
            for e in scan.videos if e.rel_path not in known
        ]
        for chunk in chunked(new_rows):
            session.execute(insert_ignoring_duplicates(session, Video), chunk)
        # Identities follow from the file name and never change; the test-list mark may.
        for marked in (True, False):
            ids = [known[e.rel_path].id for e in scan.videos
                   if e.rel_path in known and e.official_test == marked and known[e.rel_path].official_test != marked]
            for chunk in chunked(ids):
                session.execute(update(Video).where(Video.id.in_(chunk)).values(official_test=marked))
        new = len(new_rows)
        changed = mark_changed_videos(session, dataset.id, scan.root, {e.rel_path for e in scan.videos})
        ingest = Ingest(dataset_id=dataset.id, params=params, then_train=then_train, train_options=train_options)
        session.add(ingest)
        session.flush()

        retried = 0
        if retry_failed:
            retried = session.execute(
                update(Video)
                .where(Video.dataset_id == dataset.id, Video.status == FAILED)
                .values(status=PENDING, error=None)
            ).rowcount
        if embedded:
            # Nothing else runs in embedded mode: anything unfinished was interrupted.
            unfinished = Video.status.in_([PENDING, RUNNING])
        else:
            # Other workers may be busy with a video right now: only take what was never
            # enqueued, or what has been silent for longer than a task may live.
            stale = utcnow() - timedelta(seconds=settings.cpu_task_hard_limit_s + 60)
            unfinished = or_(
                (Video.status == PENDING) & (Video.enqueued_at.is_(None)),
                Video.status.in_([PENDING, RUNNING])
                & (func.coalesce(Video.started_at, Video.enqueued_at) < stale),
            )
        rows = session.execute(
            select(Video.id, Video.rel_path).where(Video.dataset_id == dataset.id, unfinished).order_by(Video.id)
        ).all()
        if queued is not None and not embedded:  # pending, but no queue holds its message: lost
            chosen = {r.id for r in rows}
            rows += [r for r in session.execute(
                select(Video.id, Video.rel_path).where(Video.dataset_id == dataset.id, Video.status == PENDING,
                                                       Video.enqueued_at.is_not(None)).order_by(Video.id)
            ).all() if r.id not in queued and r.id not in chosen]
        if then_train:
            # Videos still in flight from an earlier ingest must also answer to this one's barrier.
            session.execute(
                update(Video)
                .where(Video.dataset_id == dataset.id, Video.status.in_([PENDING, RUNNING]))
                .values(ingest_id=ingest.id)
            )
        total = session.scalar(select(func.count()).select_from(Video).where(Video.dataset_id == dataset.id))
        return IngestPlan(
            dataset_id=dataset.id,
            ingest_id=ingest.id,
            new_videos=new,
            total_videos=total,
            to_enqueue=[(r.id, r.rel_path) for r in rows],
            retried_failed=retried,
            dataset_name=dataset.name,
            changed_videos=changed,
        )


def mark_changed_videos(session, dataset_id: int, root, scanned: set[str]) -> int:
    """Finished videos whose file was replaced under the same name since their crops were made: back
    to pending, to be done again (the worker replaces their crops in one transaction). Returns how
    many. Videos recorded before files were stamped get the stamp of their file now (size and time:
    only a later change can be seen)."""
    from pathlib import Path

    from workers.fingerprint import stamp_differs

    rows = session.execute(
        select(Video.id, Video.rel_path, Video.size_bytes, Video.mtime_ns, Video.fingerprint)
        .where(Video.dataset_id == dataset_id, Video.status.in_(FINISHED_STATUSES))).all()
    changed, restamped = [], []
    for row in rows:
        if row.rel_path not in scanned:
            continue
        path = Path(root) / row.rel_path
        differs = stamp_differs(row._asdict(), path)
        if differs:
            changed.append(row.id)
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        if row.size_bytes is None or stat.st_mtime_ns != row.mtime_ns:  # unstamped, or the same bytes touched
            restamped.append({"id": row.id, "size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    for chunk in chunked(changed):
        session.execute(update(Video).where(Video.id.in_(chunk))
                        .values(status=PENDING, error=None, enqueued_at=None, size_bytes=None, mtime_ns=None,
                                fingerprint=None))
    for chunk in chunked(restamped):
        session.execute(update(Video), chunk)
    return len(changed)


def enqueue_videos(ingest_id: int, videos: list[tuple[int, str]], params: dict, *, force: bool = False) -> int:
    """One Celery task per (video id, path); the app routes them to the cpu queue. A video is marked
    enqueued only once its message was sent: when the broker fails midway, the videos not sent stay
    unmarked and the next run sends them (WorkFailed says how many were sent)."""
    if not videos:
        return 0
    sent: list[int] = []

    def mark(ids: list[int]) -> None:
        with session_scope() as session:
            for chunk in chunked(ids):
                session.execute(update(Video).where(Video.id.in_(chunk))
                                .values(status=PENDING, enqueued_at=utcnow(), ingest_id=ingest_id))

    try:
        with app.connection_for_write() as connection:
            for video_id, rel_path in videos:
                app.send_task(
                    PROCESS_VIDEO_TASK,
                    kwargs={"video_id": video_id, "video": rel_path, "params": params, "force": force},
                    connection=connection,
                )
                sent.append(video_id)
                if len(sent) % CHUNK == 0:
                    mark(sent[-CHUNK:])
    except KombuError as exc:
        from shared.settings import mask_url

        mark(sent[len(sent) - len(sent) % CHUNK:])
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkFailed(f"broker {mask_url(get_settings().broker_url)}: {reason}; {len(sent)} of {len(videos)} "
                         "videos sent, the others stay pending: run the command again once it is back") from None
    mark(sent[len(sent) - len(sent) % CHUNK:])
    return len(sent)


def lost_pending_videos(dataset_id: int, sent_before_s: float = 30.0) -> list[tuple[int, str]]:
    """Pending videos sent more than ``sent_before_s`` ago whose message no queue holds (a Redis
    restarted empty): `ingest --wait` sends them again instead of waiting for ever. [] when the
    broker cannot be looked into."""
    queued = queued_video_ids()
    if queued is None:
        return []
    sent_before = utcnow() - timedelta(seconds=sent_before_s)
    with session_scope() as session:
        rows = session.execute(
            select(Video.id, Video.rel_path).where(Video.dataset_id == dataset_id, Video.status == PENDING,
                                                   Video.enqueued_at < sent_before).order_by(Video.id)).all()
    return [(r.id, r.rel_path) for r in rows if r.id not in queued]


def queued_video_ids() -> set[int] | None:
    """Ids of the videos whose message a Redis broker holds (queued, or delivered and not yet
    acknowledged); None when the broker cannot be looked into (another transport). A pending video
    outside this set lost its message (a Redis restarted without persistence): send it again."""
    import base64
    import json

    if not get_settings().broker_url.startswith(("redis://", "rediss://")):
        return None
    from workers.celery_app import CPU_QUEUE

    def video_id(payload: bytes | str):
        try:
            message = json.loads(payload)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            _args, kwargs, _embed = json.loads(body)
            return int(kwargs["video_id"])
        except (ValueError, KeyError, TypeError):
            return None

    ids: set[int] = set()
    with app.connection_for_read() as connection:
        client = connection.default_channel.client
        # kombu keeps one list per priority step: "cpu", "cpu\x06\x163", ...
        for key in client.keys(f"{CPU_QUEUE}*"):
            if client.type(key) == b"list":
                ids.update(video_id(raw) for raw in client.lrange(key, 0, -1))
        for raw in client.hvals("unacked"):
            try:
                ids.add(video_id(json.dumps(json.loads(raw)[0])))
            except (ValueError, IndexError, TypeError):
                continue
    ids.discard(None)
    return ids


# Pending videos that a passing error (a full disk) stopped: no message will bring them back before
# a command sends them again, so a wait does not wait for them (counted apart under this key).
HELD = "held"


def dataset_counts(dataset_id: int) -> dict[str, int]:
    with session_scope() as session:
        rows = session.execute(
            select(Video.status, func.count()).where(Video.dataset_id == dataset_id).group_by(Video.status)
        ).all()
        held = session.scalar(select(func.count()).select_from(Video)
                              .where(Video.dataset_id == dataset_id, held_videos())) if rows else 0
    counts = {status: count for status, count in rows}
    if held:
        counts[PENDING] -= held
        counts[HELD] = held
    return counts


def unfinished_count(counts: dict[str, int]) -> int:
    return sum(n for status, n in counts.items() if status not in FINISHED_STATUSES and status != HELD)


def wait_until_finished(dataset_id: int, *, on_tick: Callable[[dict[str, int]], None] | None = None,
                        check: Callable[[], None] | None = None,
                        on_db_retry: Callable[[Exception], None] | None = None, poll_s: float = 1.0,
                        timeout_s: float | None = None) -> dict[str, int]:
    """Block until no video of the dataset is pending or running; the barrier is in the database."""
    return poll_until(lambda: dataset_counts(dataset_id), lambda counts: unfinished_count(counts) == 0,
                      on_tick=on_tick, check=check, on_db_retry=on_db_retry, poll_s=poll_s, timeout_s=timeout_s)
