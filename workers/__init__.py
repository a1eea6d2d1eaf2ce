"""Celery workers: the app (``celery -A workers worker``), its tasks, and the work they call."""

from workers.celery_app import app

__all__ = ["app"]
