"""Celery workers: the app (``celery -A workers worker``), its tasks, and the work they call."""

import shared.quiet  # noqa: F401  (log levels of FFmpeg and TensorFlow before they load)
from workers.celery_app import app

__all__ = ["app"]
