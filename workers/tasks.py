"""Celery tasks: unpack arguments, call the plain functions that do the work, report."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.settings import get_settings
from workers.celery_app import PROCESS_VIDEO_TASK, app

log = get_task_logger(__name__)
_settings = get_settings()

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
    soft_time_limit=_settings.cpu_task_soft_limit_s,
    time_limit=_settings.cpu_task_hard_limit_s,
)
def process_video_task(self, video_id: int, video: str = "", params: dict | None = None,
                       force: bool = False) -> dict:
    """Sample, detect, crop and record one video. ``video`` is its path, for people reading Flower."""
    from workers.ingest import IngestParams, process_video, record_timeout

    try:
        summary = process_video(video_id, IngestParams(**(params or {})), force=force)
    except SoftTimeLimitExceeded:
        record_timeout(video_id, _settings.cpu_task_soft_limit_s)
        raise
    log.info("%s: %s, %s crops", summary.get("video", video), summary["status"], summary.get("crops", 0))
    return summary
