"""`orchestrator ingest DATASET`: Celeb-DF videos to recorded face crops."""

from __future__ import annotations

import os
from contextlib import closing

import click
from tqdm import tqdm

from orchestrator.errors import InputError
from shared.labels import FINISHED_STATUSES


def validate_params(every: float, min_confidence: float, margin: float, size: int, workers: int) -> None:
    if every <= 0:
        raise InputError(f"--every must be positive, got {every}")
    if not 0.0 <= min_confidence <= 1.0:
        raise InputError(f"--min-confidence must be between 0 and 1, got {min_confidence}")
    if margin < 0:
        raise InputError(f"--margin must be 0 or more, got {margin}")
    if size < 16:
        raise InputError(f"--size must be at least 16 pixels, got {size}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")


class ProgressBar:
    """Finished videos out of the dataset's total, with the counts per outcome."""

    def __init__(self, total: int, enabled: bool):
        self.bar = tqdm(total=total, unit="video", desc="ingest", disable=not enabled, dynamic_ncols=True)

    def __call__(self, counts: dict[str, int]) -> None:
        finished = sum(n for status, n in counts.items() if status in FINISHED_STATUSES)
        self.bar.update(finished - self.bar.n)
        self.bar.set_postfix({k: counts.get(k, 0) for k in ("running", "done", "no_face", "failed")}, refresh=False)

    def close(self) -> None:
        self.bar.close()


def run_ingest(dataset: str, *, workers: int, every: float | None, min_confidence: float | None,
               margin: float | None, size: int | None, retry_failed: bool, wait: bool,
               progress: bool, then_train: dict | None = None) -> dict:
    """Scan, record, enqueue, and (embedded mode, or --wait) follow the work to its end."""
    from db.session import init_db
    from orchestrator.embedded import local_worker_when_embedded, orphaned_videos, purge_embedded_queue
    from orchestrator.ingest import (
        dataset_counts, enqueue_videos, register_videos, unfinished_count, wait_until_finished,
    )
    from orchestrator.report import ingest_status
    from orchestrator.scan import scan_dataset
    from shared.settings import get_settings
    from workers.ingest import IngestParams

    settings = get_settings()
    params = IngestParams.from_settings(every_s=every, min_confidence=min_confidence, margin=margin, size=size)
    validate_params(params.every_s, params.min_confidence, params.margin, params.size, workers)
    scan = scan_dataset(dataset)
    init_db()
    if settings.embedded:
        purge_embedded_queue()
    plan = register_videos(scan, params.as_dict(), retry_failed=retry_failed, embedded=settings.embedded,
                           then_train=then_train is not None, train_options=then_train)
    enqueued = enqueue_videos(plan.ingest_id, plan.to_enqueue, params.as_dict())

    follow = settings.embedded or wait
    if follow and unfinished_count(dataset_counts(plan.dataset_id)):
        with local_worker_when_embedded("cpu", workers, "ingest") as worker, \
                closing(ProgressBar(plan.total_videos, progress)) as bar:
            def check() -> None:
                if worker is not None:
                    worker.check_alive()
                    enqueue_videos(plan.ingest_id, orphaned_videos(plan.dataset_id), params.as_dict())

            wait_until_finished(plan.dataset_id, on_tick=bar, check=check)
    training = None
    if then_train is not None:
        training = start_or_follow_training(plan, enqueued, follow=follow, progress=progress)
    return {
        "training": training,
        "dataset": str(scan.root),
        "ingest_id": plan.ingest_id,
        "mode": "embedded" if settings.embedded else "distributed",
        "new_videos": plan.new_videos,
        "enqueued": enqueued,
        "retried_failed": plan.retried_failed,
        "warnings": scan.warnings,
        "followed": follow,
        "status": ingest_status(plan.dataset_id),
    }


def start_or_follow_training(plan, enqueued: int, *, follow: bool, progress: bool) -> dict:
    """After the videos: the run the database barrier started (or starts now), followed when asked."""
    from orchestrator.barrier import ingest_run_id, previous_training, start_training_when_done
    from orchestrator.training import find_run, run_report

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
    if follow and run.status in ("queued", "running"):
        from orchestrator.commands.train import follow_run

        follow_run(run_id, progress=progress)
        run = find_run(run_id)
    return {"run_id": run_id, "started": True, "report": run_report(run)}


def recorded_run(run_id: str, timeout_s: float = 60.0):
    """The run, once recorded: the task that claimed it writes its row a moment after the claim."""
    import time

    from orchestrator.errors import InputError
    from orchestrator.training import find_run

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return find_run(run_id)
        except InputError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def print_summary(result: dict) -> None:
    status = result["status"]
    videos = status["videos"]
    by = videos["by_status"]
    click.echo(
        f"{result['dataset']}: {videos['total']} videos ({videos['by_label']['real']} real, "
        f"{videos['by_label']['fake']} fake), {result['new_videos']} new, {result['enqueued']} processed now"
    )
    click.echo(
        f"done {by['done']}, no face {by['no_face']}, failed {by['failed']}, "
        f"pending {by['pending']}, running {by['running']}; {status['crops']} crops"
    )
    for failure in status["failures"][:10]:
        click.echo(f"  failed: {failure['video']}: {failure['error']}")
    if len(status["failures"]) > 10:
        click.echo(f"  ... and {len(status['failures']) - 10} more (orchestrator status --json)")
    if not result["followed"] and result["enqueued"]:
        click.echo("enqueued on queue 'cpu'; follow with `orchestrator status`, Flower, or re-run with --wait")
    training = result.get("training")
    if training:
        if training.get("report"):
            from orchestrator.commands.train import format_report

            click.echo(format_report(training["report"]))
        else:
            click.echo(training["note"])


@click.command("ingest")
@click.argument("dataset", type=click.Path(path_type=str))
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default="the CPU count",
              help="Local worker processes (embedded mode).")
@click.option("--every", type=float, default=None, help="Seconds between sampled frames [default: 3.0].")
@click.option("--min-confidence", type=float, default=None, help="Keep faces at least this confident [default: 0.95].")
@click.option("--margin", type=float, default=None, help="Enlarge the face box by this fraction [default: 0.3].")
@click.option("--size", type=int, default=None, help="Crop side in pixels [default: 128].")
@click.option("--retry-failed", is_flag=True, help="Process videos that failed before once more.")
@click.option("--wait", is_flag=True, help="With a broker configured: follow progress until done.")
@click.option("--then-train", is_flag=True, help="Start training once, when the last video is finished.")
@click.option("--train-option", "train_options", multiple=True, metavar="KEY=VALUE",
              help="A `train` option for --then-train, e.g. epochs=1 weights=none (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def ingest_command(dataset, workers, every, min_confidence, margin, size, retry_failed, wait, then_train,
                   train_options, as_json):
    """Record every video of a Celeb-DF folder and turn each into face crops (one task per video)."""
    then = None
    if then_train or train_options:
        from orchestrator.training import check_options, parse_train_options

        then = parse_train_options(list(train_options))
        check_options(then)  # bad options fail now, before any video is processed
        from shared.settings import get_settings

        if get_settings().embedded and str(then.get("weights", "imagenet")).lower() == "imagenet":
            from orchestrator.commands.train import check_imagenet_weights

            check_imagenet_weights(then.get("backbone") or "resnet50")
    result = run_ingest(dataset, workers=workers, every=every, min_confidence=min_confidence, margin=margin,
                        size=size, retry_failed=retry_failed, wait=wait, progress=not as_json, then_train=then)
    if as_json:
        from orchestrator.cli import print_json

        print_json(result)
    else:
        for warning in result["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        print_summary(result)
    if result["status"]["failures"] or (result["training"] or {}).get("report", {}).get("status") == "failed":
        raise SystemExit(1)
