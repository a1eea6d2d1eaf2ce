"""`predict --queue`: every video recorded as a judgement and judged by one task on `predict`,
followed to its verdict (embedded: local workers for the duration, as for ingest)."""

from __future__ import annotations

import getpass
import shutil
import socket
from contextlib import closing, nullcontext
from pathlib import Path

from tqdm import tqdm

from orchestrator.embedded import ensure_broker_dirs, local_worker_when_embedded
from orchestrator.output import warn_database_unreachable
from shared.errors import InputError
from shared.settings import get_settings
from shared.storage import local_copy, open_store, put_once, upload_key

# What a folder given to `predict --queue` is searched for (recursively, in name order).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
POLL_S = 0.25


def requester() -> str:
    """Who asked, as a judgement records it for the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def expand_videos(inputs: list[Path]) -> tuple[list[Path], list[dict]]:
    """(readable videos, [{"video", "error"}] of the others). A folder gives its video files."""
    from workers.video import VideoError, open_video

    candidates: list[Path] = []
    unreadable: list[dict] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                unreadable.append({"video": str(path), "error": f"{path}: no video files ({', '.join(VIDEO_SUFFIXES)})"})
            candidates += found
        else:
            candidates.append(path)
    videos = []
    for path in dict.fromkeys(candidates):
        try:
            capture, _ = open_video(path)
            capture.release()
            videos.append(path)
        except VideoError as exc:
            unreadable.append({"video": str(path), "error": str(exc) if str(path) in str(exc) else f"{path}: {exc}"})
    return videos, unreadable


class JudgementProgress:
    """Judged videos out of those sent, with the count per status."""

    def __init__(self, total: int, enabled: bool):
        self.bar = tqdm(total=total, unit="video", desc="predict", disable=not enabled, dynamic_ncols=True)

    def __call__(self, states: dict[str, str]) -> None:
        from workers.planning.judgements import JUDGEMENT_FINISHED

        counts: dict[str, int] = {}
        for status in states.values():
            counts[status] = counts.get(status, 0) + 1
        self.bar.update(sum(counts.get(s, 0) for s in JUDGEMENT_FINISHED) - self.bar.n)
        self.bar.set_postfix({k: counts.get(k, 0) for k in ("running", *JUDGEMENT_FINISHED)}, refresh=False)

    def close(self) -> None:
        self.bar.close()


def predict_on_queue(inputs: list[Path], run_id: str | None = None, *, explain_dir: Path | None = None,
                     force: bool = False, workers: int = 1, progress: bool = True) -> tuple[object, list[dict]]:
    """(run, one result per video: its judgement's report plus "video" and "stored" (a verdict
    recorded before this command); {"video", "error"} for a file that is not a readable video). InputError when nothing can be judged."""
    from orchestrator.database import open_database
    from orchestrator.jobs import finished_run
    from workers.planning.judgements import (QUEUED, dispatch_judgement, file_sha256, find_judgement, judging_model,
                                             orphaned_judgements, submit_judgement, wait_for_judgements)

    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    videos, unreadable = expand_videos(inputs)
    if not videos:
        raise InputError("; ".join(u["error"] for u in unreadable) or "no video given")
    settings = get_settings()
    open_database()
    run = finished_run(run_id, "predict")
    model = judging_model(run)
    if settings.embedded:
        ensure_broker_dirs()
    who = requester()
    store = open_store()
    ids, to_send, stored = [], [], set()
    for path in videos:
        sha256, size = file_sha256(path)
        # On local disk the workers read the file where it is; with an object store they may run on
        # other hosts: the video goes to the store under its content hash, as an upload to `serve` does.
        source = put_once(upload_key(sha256), path) if store.remote else path.resolve()
        report, new = submit_judgement(source=source, sha256=sha256, size=size, file_name=path.name,
                                       model=model, api_key_id=None, requested_by=who,
                                       explain=explain_dir is not None, force=force)
        ids.append(report["id"])
        # Embedded: a judgement left queued by an interrupted command lost its message with the
        # local workers' queue; the claim in the database makes a second message harmless.
        if new or (settings.embedded and report["status"] == QUEUED):
            to_send.append((report["id"], path.name))
        elif not new:
            stored.add(report["id"])
    # Local workers only when there is something to judge: stored verdicts need no model.
    workers_needed = local_worker_when_embedded("predict", min(workers, len(to_send)), "predict",
                                                announce=progress) if to_send else nullcontext()
    with workers_needed as worker:
        for judgement_id, name in to_send:
            dispatch_judgement(judgement_id, name, force=force)
        mine = set(ids)

        def check() -> None:
            if worker is not None:
                worker.check_alive()
                for judgement_id, name in orphaned_judgements():  # a local worker child died mid-video
                    if judgement_id in mine:
                        dispatch_judgement(judgement_id, name)

        with closing(JudgementProgress(len(ids), progress)) as bar:
            wait_for_judgements(ids, on_tick=bar, check=check, on_db_retry=warn_database_unreachable, poll_s=POLL_S)
    results = []
    for path, judgement_id in zip(videos, ids):
        result = {"video": str(path), **find_judgement(judgement_id, any_owner=True),
                  "stored": judgement_id in stored}
        if explain_dir is not None and result.get("explanation"):
            explain_dir.mkdir(parents=True, exist_ok=True)
            copied = explain_dir / f"{path.stem}.png"
            shutil.copyfile(local_copy(result["explanation"]), copied)  # its key in the storage root
            result["explanation"] = str(copied)
        results.append(result)
    return run, results + unreadable
