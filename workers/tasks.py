"""Celery tasks: unpack arguments, call the plain functions that do the work, report."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.labels import FAILED
from shared.settings import get_settings
from workers.celery_app import EVALUATE_TASK, JUDGE_TASK, PROCESS_VIDEO_TASK, TRAIN_TASK, app

log = get_task_logger(__name__)

# Errors worth another try: the database or the network blinked. A bad video is not one of
# them: process_video records it as failed and returns normally.
TRANSIENT_ERRORS = (OperationalError, DBAPIError, ConnectionError, TimeoutError)


@app.task(
    name=PROCESS_VIDEO_TASK,
    bind=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)  # time limits and queue: task_annotations and task_routes in workers/celery_app.py
def process_video_task(self, video_id: int, video: str = "", params: dict | None = None,
                       force: bool = False) -> dict:
    """Sample, detect, crop and record one video. ``video`` is its path, for people reading Flower."""
    from workers.ingest import IngestParams, process_video, record_failure, record_timeout
    from workers.planning.barrier import ingest_of_video, start_training_when_done

    try:
        summary = process_video(video_id, IngestParams.from_dict(params), force=force)
    except SoftTimeLimitExceeded:
        record_timeout(video_id, get_settings().cpu_task_soft_limit_s)
        start_training_when_done(ingest_of_video(video_id))  # a timed-out last video still ends the ingest
        raise
    except TRANSIENT_ERRORS:
        raise  # autoretry_for: another try later
    except Exception as exc:  # anything else is this video's failure: recorded, never left running
        log.exception("video %s (%s) failed", video_id, video)
        record_failure(video_id, exc)
        start_training_when_done(ingest_of_video(video_id))
        return {"video": video, "video_id": video_id, "status": FAILED, "error": str(exc)}
    log.info("%s: %s, %s crops", summary.get("video", video), summary["status"], summary.get("crops", 0))
    run_id = start_training_when_done(summary.get("ingest_id"))  # set only when a barrier waits
    if run_id:
        log.info("last video of ingest %s finished: training run %s dispatched", summary["ingest_id"], run_id)
        summary["started_training"] = run_id
    return summary


# Acknowledged on receipt, not after the work: a run is protected by its lease in the database
# (workers/training/lease.py), not by the broker's visibility timeout, which can then be sized for
# videos (minutes) rather than for training (hours). A worker that dies mid-run loses the message;
# the run's expired lease brings it back, resumed from its last epoch checkpoint.
@app.task(name=TRAIN_TASK, bind=True, acks_late=False)
def train_task(self, run_id: str, summary: str = "") -> dict:
    """Train, evaluate and record one run. ``summary`` says what it trains, for Flower."""
    from workers.training.run import describe_progress, execute_run

    def show_in_flower(event: dict) -> None:
        # Flower shows a custom event's type as the task's state and only its known fields:
        # the progress line travels in "result", which its task page displays.
        self.send_event("task-progress", result=describe_progress(event))

    summary_out = execute_run(run_id, forward_progress=show_in_flower)
    log.info("run %s: %s", run_id, summary_out["status"])
    return summary_out


@app.task(name=EVALUATE_TASK, bind=True)
def evaluate_task(self, evaluation_id: int, summary: str = "") -> dict:
    """Score a run's model on one dataset's crops and record the result. ``summary`` is for Flower."""
    from workers.training.cross_eval import execute_evaluation

    outcome = execute_evaluation(evaluation_id)
    if not outcome.get("skipped"):
        from workers.planning.evaluations import evaluation_report
        from workers.planning.runs import rewrite_report_html

        # The run's page now shows this evaluation, beside the published numbers where the pair is known.
        rewrite_report_html(evaluation_report(evaluation_id)["run_id"])
    log.info("evaluation %s: %s", evaluation_id, outcome["status"])
    return outcome


@app.task(name=JUDGE_TASK, bind=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=60,
          retry_jitter=True, max_retries=5)  # acknowledged late: a killed worker's judgement comes back
def judge_task(self, judgement_id: str, video: str = "", force: bool = False) -> dict:
    """Judge one recorded video with its run's model (kept by this process). ``video`` is for Flower."""
    from workers.judge import judge_recorded, record_judgement_failure

    try:
        outcome = judge_recorded(judgement_id, force=force)
    except SoftTimeLimitExceeded:
        record_judgement_failure(judgement_id, f"timed out after {get_settings().predict_task_soft_limit_s} s")
        raise
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # this judgement's failure: recorded, never left running
        log.exception("judgement %s (%s) failed", judgement_id, video)
        record_judgement_failure(judgement_id, exc)
        return {"id": judgement_id, "status": "failed", "error": str(exc)}
    log.info("judgement %s (%s): %s", judgement_id, video, outcome["status"])
    return outcome
