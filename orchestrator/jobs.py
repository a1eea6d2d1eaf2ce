"""What the commands run: ingest, training, evaluation and prediction, followed to their end, with
embedded local workers when no cluster is configured.

A command parses, calls one function and prints. It calls one here when the call starts work:
checks before anything is written, enqueueing, local workers, following progress, loading a model.
A command that only reads what the database knows (`status`, `export`, `datasets`, `report`, `runs`,
the demo's held-out examples) calls the read in ``workers.planning`` itself: a function here would
only pass its arguments on.
"""

from __future__ import annotations

import sys
import time
from contextlib import closing
from pathlib import Path

from orchestrator.database import database_exists, open_database
from orchestrator.embedded import ensure_broker_dirs, local_worker_when_embedded, orphaned_videos, purge_embedded_queue
from orchestrator.output import IngestProgress, TrainingProgress, warn, warn_database_unreachable
from shared.errors import InputError, WorkFailed
from shared.ingest_params import IngestParams
from shared.labels import RUN_DONE, RUN_QUEUED, RUN_RUNNING
from shared.settings import get_settings
from shared.storage import local_copy
from shared.train_config import TrainConfig

# How often a followed command reads progress from the database (one small query).
POLL_S = 0.25


# How often `ingest --wait` looks into the broker for pending videos whose message was lost.
LOST_MESSAGE_LOOK_S = 60.0


def check_train_options(options: dict) -> TrainConfig:
    """The checked training configuration (the one check of a run's options); in embedded mode,
    ImageNet weights are checked now (offline: a one-line error) rather than after a worker has started."""
    config = TrainConfig.from_options(options, check_files=True)
    if get_settings().embedded and config.weights.lower() == "imagenet":
        check_imagenet_weights(config.backbone, config.image_size)
    return config


def check_imagenet_weights(backbone: str, image_size: int = 128) -> None:
    from shared.quiet import load_tensorflow

    load_tensorflow()
    from workers.training.models import WeightsUnavailableError, build_model

    try:
        build_model(backbone, weights="imagenet", image_size=image_size)
    except WeightsUnavailableError as exc:
        raise InputError(str(exc)) from None


def read_dataset_folder(dataset: str, fmt: str = "auto", *, compression: str | None = None,
                        splits: str | None = None, follow_outside_links: bool = False):
    """(scan, scan options to record). What an earlier ingest of the folder was told (FF++
    compression and splits folder) holds unless given again."""
    from workers.datasets import FORMATS, read_dataset

    fmt = (fmt or "auto").lower()
    if fmt not in ("auto", *FORMATS):
        raise InputError(f"unknown --format {fmt!r}; choose one of auto, {', '.join(FORMATS)}")
    recorded = None
    if database_exists():  # a fresh DATA_DIR imports no database code here: the local workers start sooner
        from workers.planning.ingest import recorded_dataset

        open_database()
        recorded = recorded_dataset(dataset)
    options = dict((recorded or {}).get("scan_options") or {})
    if fmt == "auto" and recorded:
        fmt = recorded["format"]
    if compression is not None:
        options["compression"] = compression
    if splits is not None:
        options["splits"] = str(Path(splits).expanduser().resolve())
    scan = read_dataset(dataset, fmt, compression=options.get("compression", "c23"), splits_dir=options.get("splits"),
                        follow_outside_links=follow_outside_links)
    if scan.format != "ffpp":
        given = [flag for flag, value in (("--compression", compression), ("--splits", splits)) if value is not None]
        if given:
            raise InputError(f"{' and '.join(given)} only apply to --format ffpp; {dataset} is {scan.format}")
        options = {}
    else:
        options.setdefault("compression", "c23")
    return scan, options


def run_ingest(dataset: str, params: IngestParams, *, workers: int, retry_failed: bool = False, wait: bool = False,
               progress: bool = True, then_train: dict | None = None, fmt: str = "auto", name: str | None = None,
               compression: str | None = None, splits: str | None = None,
               follow_outside_links: bool = False) -> dict:
    """Read the dataset's layout, record, enqueue, and (embedded mode, or --wait) follow the work to its end."""
    settings = get_settings()
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if name is not None and not name.strip():
        raise InputError("--name must not be empty")
    scan, scan_options = read_dataset_folder(dataset, fmt, compression=compression, splits=splits,
                                             follow_outside_links=follow_outside_links)
    follow = settings.embedded or wait
    if settings.embedded:
        purge_embedded_queue()  # before the local workers start reading the queue
    # Local workers boot (TensorFlow, MTCNN in every process: seconds) while the database code is
    # imported, the schema migrated and the videos recorded and enqueued: nothing heavy before them.
    with local_worker_when_embedded("cpu", workers, "ingest", announce=progress) as worker:
        from workers.planning.ingest import dataset_counts, enqueue_videos, queued_video_ids, register_videos
        from workers.planning.ingest import lost_pending_videos, unfinished_count, wait_until_finished
        from workers.planning.status import ingest_status

        queued = None if settings.embedded else queued_video_ids()  # what the broker holds (Redis)
        open_database()
        plan = register_videos(scan, params.as_dict(), retry_failed=retry_failed, embedded=settings.embedded,
                               then_train=then_train is not None, train_options=then_train, queued=queued,
                               name=name.strip() if name else None, scan_options=scan_options or None)
        enqueued = enqueue_videos(plan.ingest_id, plan.to_enqueue, params.as_dict())
        if follow and not settings.embedded and progress:
            say_what_we_wait_for(dataset_counts(plan.dataset_id), queued, enqueued)
        if follow and unfinished_count(dataset_counts(plan.dataset_id)):
            last_look = time.monotonic()

            def check() -> None:
                nonlocal last_look
                if worker is not None:
                    worker.check_alive()
                    enqueue_videos(plan.ingest_id, orphaned_videos(plan.dataset_id), params.as_dict())
                elif time.monotonic() - last_look > LOST_MESSAGE_LOOK_S:  # a cluster: did Redis lose any?
                    last_look = time.monotonic()
                    lost = lost_pending_videos(plan.dataset_id)
                    if lost:
                        bar.bar.write(f"warning: the broker holds no message for {len(lost)} pending videos "
                                      "(restarted without persistence?): sending them again", file=sys.stderr)
                        enqueue_videos(plan.ingest_id, lost, params.as_dict())

            with closing(IngestProgress(plan.total_videos, progress)) as bar:
                wait_until_finished(plan.dataset_id, on_tick=bar, check=check, on_db_retry=warn_database_unreachable,
                                    poll_s=POLL_S)
    training = None
    if then_train is not None:
        training = start_or_follow_training(plan, enqueued, follow=follow, progress=progress)
    return {
        "training": training,
        "dataset": str(scan.root),
        "name": plan.dataset_name,
        "format": scan.format,
        "format_detected": (fmt or "auto").lower() == "auto",
        "ingest_id": plan.ingest_id,
        "mode": "embedded" if settings.embedded else "distributed",
        "new_videos": plan.new_videos,
        "changed_videos": plan.changed_videos,
        "enqueued": enqueued,
        "retried_failed": plan.retried_failed,
        "warnings": scan.warnings,
        "followed": follow,
        "status": ingest_status(plan.dataset_id),
    }


def say_what_we_wait_for(counts: dict, queued: set | None, enqueued: int) -> None:
    """`ingest --wait` with a cluster: one line saying what it waits for, and on whom."""
    import click

    from shared.labels import PENDING, RUNNING

    pending, running = counts.get(PENDING, 0), counts.get(RUNNING, 0)
    if not pending and not running:
        return
    held = f", {len(queued)} messages in the broker before this run" if queued is not None else ""
    click.echo(f"waiting for {pending} pending and {running} running videos ({enqueued} sent now{held}) "
               "on the cluster's cpu workers; Ctrl-C stops waiting, not the work", err=True)


def start_or_follow_training(plan, enqueued: int, *, follow: bool, progress: bool) -> dict:
    """After the videos: the run the database barrier started (or starts now), followed when asked."""
    from workers.planning.barrier import ingest_run_id, previous_training, start_training_when_done
    from workers.planning.runs import find_run, run_report

    run_id = ingest_run_id(plan.ingest_id)
    if run_id is None and not enqueued:
        earlier = previous_training(plan.dataset_id)
        if earlier:
            return {"run_id": earlier, "started": False,
                    "note": f"nothing changed since run {earlier}: no new training run"}
        run_id = start_training_when_done(plan.ingest_id)
    if run_id is None and follow:
        # Every video is finished, but the task of the last one may not have reached the barrier
        # yet: claim the run here (the claim is atomic), or take the one that task just claimed.
        run_id = start_training_when_done(plan.ingest_id) or ingest_run_id(plan.ingest_id)
    if run_id is None:  # videos still queued (distributed, no --wait): the last one will start it
        return {"run_id": None, "started": False, "note": "training starts when the last video is finished"}
    run = recorded_run(run_id)
    if follow and run.status in (RUN_QUEUED, RUN_RUNNING):
        follow_run(run_id, progress=progress)
        run = find_run(run_id)
    return {"run_id": run_id, "started": True, "report": run_report(run)}


def recorded_run(run_id: str, timeout_s: float = 60.0):
    """The run, once recorded: the task that claimed it writes its row a moment after the claim."""
    from workers.planning.runs import find_run

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return find_run(run_id)
        except InputError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_training(options: dict, *, wait: bool, progress: bool, datasets: list[str] | None = None) -> dict:
    """Plan the run (on ``datasets``, default every one), dispatch it to the gpu queue, and
    (embedded mode, or --wait) follow it."""
    from workers.planning.runs import dispatch_run, find_run, plan_run, run_report

    config = check_train_options(options)
    open_database()
    if get_settings().embedded:
        ensure_broker_dirs()
    run_id, _ = plan_run(config, datasets=datasets)
    planned = find_run(run_id).config
    for message in planned.get("input_warnings") or []:
        warn(message)
    dispatch_run(run_id, planned)
    if get_settings().embedded or wait:
        follow_run(run_id, progress=progress)
    return run_report(find_run(run_id))


def resume_training(run_id: str, *, wait: bool, progress: bool) -> dict:
    """`train --resume RUN`: back on the gpu queue if its lease expired; followed like a new run."""
    from workers.planning.runs import dispatch_run, find_run, run_report
    from workers.training.lease import take_back_run

    open_database()
    if get_settings().embedded:
        ensure_broker_dirs()
    take_back_run(run_id, dispatch_run)
    if get_settings().embedded or wait:
        follow_run(run_id, progress=progress)
    return run_report(find_run(run_id))


def follow_run(run_id: str, *, progress: bool) -> None:
    """Wait for a run to end; in embedded mode, run the local gpu-queue worker meanwhile."""
    from workers.planning.runs import wait_for_run
    from workers.training.lease import abandoned_run

    # One process with every core, recycled after the run (that frees the model's memory).
    with local_worker_when_embedded("gpu", 1, "train", max_tasks_per_child=1, threads=0) as worker, \
            closing(TrainingProgress(progress)) as bar:

        def check() -> None:
            worker.check_alive()
            holder = abandoned_run(run_id)
            if holder:  # its task ended without recording an outcome (the database could not be written?)
                raise WorkFailed(f"run {run_id}: its worker ({holder}) stopped without recording an outcome "
                                 f"(see {worker.log_path}; a full disk?): fix that, then "
                                 f"`orchestrator train --resume {run_id}` continues it")

        wait_for_run(run_id, on_tick=bar, check=check if worker else None, on_db_retry=warn_database_unreachable)


def run_evaluation(run_id: str | None, dataset: str, part: str | None, *, wait: bool) -> dict:
    """Record the evaluation of a run (default: the latest finished one) on a dataset, dispatch it
    to the gpu queue, and (embedded mode, or --wait) follow it to its end."""
    from workers.planning.evaluations import (dispatch_evaluation, evaluation_report, plan_evaluation,
                                              wait_for_evaluation)
    from workers.planning.runs import find_run

    if not dataset:
        raise InputError("--dataset NAME is required: `orchestrator datasets` lists them")
    open_database()
    if get_settings().embedded:
        ensure_broker_dirs()  # a DATA_DIR copied without its broker folder (or that never trained)
    run = find_run(run_id, finished=not run_id)
    evaluation_id, warnings = plan_evaluation(run, dataset, part)
    if get_settings().embedded:
        ensure_broker_dirs()  # and this command's own queues, before anything is sent
    dispatch_evaluation(evaluation_id, summary=f"run {run.id} on {dataset}")
    if get_settings().embedded or wait:
        with local_worker_when_embedded("gpu", 1, "evaluate", max_tasks_per_child=1, threads=0) as worker:
            wait_for_evaluation(evaluation_id, check=worker.check_alive if worker else None,
                                on_db_retry=warn_database_unreachable)
    return {**evaluation_report(evaluation_id), "warnings": warnings}


def finished_run(run_id: str | None, doing: str):
    """The run named (or the latest finished one), which must be finished to do ``doing``."""
    from workers.planning.runs import find_run

    run = find_run(run_id, finished=not run_id)
    if run.status != RUN_DONE:
        raise InputError(f"run {run.id} is {run.status}: only a finished run can {doing}")
    return run


def predict_videos(videos: list[Path], run_id: str | None = None, explain_dir: Path | None = None,
                   aggregate: str | None = None):
    """(run, [{"video", "fake_probability", "label", "faces"}, ...]); a video that cannot be read
    comes back as {"video", "label": None, "error"}; InputError when none can be read."""
    from workers.video import VideoError, open_video

    if explain_dir is not None:
        if explain_dir.exists() and not explain_dir.is_dir():
            raise InputError(f"--explain {explain_dir}: is a file, not a directory (the contact sheets go in a folder)")
        try:
            explain_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--explain {explain_dir}: cannot make the folder: {exc.strerror or exc}") from None
    unreadable = []  # every input is checked before anything heavy is loaded
    for path in videos:
        try:
            capture, _ = open_video(path)
            capture.release()
        except VideoError as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            unreadable.append({"video": str(path), "label": None, "error": message})
    if len(unreadable) == len(videos):
        raise InputError("; ".join(u["error"] for u in unreadable))
    videos = [p for p in videos if str(p) not in {u["video"] for u in unreadable}]
    open_database()
    run = finished_run(run_id, "predict")
    from shared.quiet import load_tensorflow

    load_tensorflow()
    from workers.predict import judge_videos

    try:
        judged = judge_videos(videos, run, explain_dir=explain_dir, aggregate=aggregate)
        return run, judged + unreadable  # judged, then not
    except VideoError as exc:
        raise InputError(str(exc)) from None


def export_run_model(run_id: str | None, dest: Path, fmt: str):
    """(run, what was written) for `export-model`: the run's model taking raw uint8 crops."""

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: exists and is not an empty directory")
    open_database()
    run = finished_run(run_id, "be exported")
    from shared.quiet import load_tensorflow

    load_tensorflow()
    from workers.training.export import export_model
    from workers.training.inference import load_model

    model = load_model(local_copy(run.artifacts["model"]))
    return run, export_model(model, dest, fmt,
                             threshold=run.config.get("threshold"), run_id=run.id)
