"""The Celery app, built from settings. Nothing else lives here."""

from __future__ import annotations

import sys

from celery import Celery
from kombu import Queue

from shared.errors import InputError
from shared.process import command_queue
from shared.settings import get_settings

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
# Judging new videos with a trained run's model: a queue of its own, so screening never waits behind
# an ingest's thousands of videos, and any worker can take it (a GPU worker: `-Q gpu,predict`).
PREDICT_QUEUE = "predict"
PROCESS_VIDEO_TASK = "ingest.process_video"
TRAIN_TASK = "train.fit"
EVALUATE_TASK = "train.evaluate"  # a run's model scored on a dataset: a model on the gpu queue, like training
JUDGE_TASK = "predict.judge"  # one recorded judgement (workers/judge.py): a video and a run's model
QUEUE_OF_TASK = {PROCESS_VIDEO_TASK: CPU_QUEUE, TRAIN_TASK: GPU_QUEUE, EVALUATE_TASK: GPU_QUEUE,
                 JUDGE_TASK: PREDICT_QUEUE}


def route_task(name, args, kwargs, options, task=None, **kw):
    """The app's one router: each task to its queue (``QUEUE_OF_TASK``), read when it is sent. In
    embedded mode that is the sending command's own queue (``shared.process.command_queue``)."""
    queue = QUEUE_OF_TASK.get(name)
    return {"queue": command_queue(queue)} if queue else None


def broker_transport_options(settings) -> dict:
    if settings.broker_url.startswith("filesystem"):
        # Embedded mode: producer and workers share one folder under DATA_DIR.
        # Made by whoever sends or consumes first (orchestrator/embedded.py: ensure_broker_dirs), not
        # here: a command that only reads, or fails on bad input, leaves DATA_DIR alone.
        queue_dir = settings.broker_dir / "queue"
        control_dir = settings.broker_dir / "control"
        return {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(control_dir),
            # The transport polls its folder; the default 1 s would cost more than a video's work.
            "polling_interval": 0.01,
        }
    # Redis redelivers a task not acknowledged within the visibility timeout: that is how the videos
    # of a worker that died come back. It must exceed the video task's hard time limit, or a slow
    # video would be started a second time meanwhile (default: that limit + 300 s = 17 min). Training
    # tasks are acknowledged on receipt (workers/tasks.py): their lease in the database protects them,
    # so this one timeout (kombu has one per connection, for every queue) need not last hours.
    visibility = settings.visibility_timeout_s
    # Workers look for such messages every unacked_restore_interval x unacked_restore_throttle s
    # (kombu: 10 x 10). Look at least ten times per timeout, so a dead worker's tasks come back
    # within ~1.1 timeouts; the default timeout keeps kombu's defaults.
    sweep = settings.redelivery_sweep_s
    interval = min(10, sweep)
    return {
        "visibility_timeout": visibility,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": max(1, sweep // interval),
        # Each look runs under one Redis lock for every process on the broker (`unacked_mutex`, a
        # few ms), which expires after unacked_mutex_expire (kombu: 300 s) if its holder dies
        # holding it: a worker killed in a look then stops every other worker's looks, and a dead
        # worker's video came back 299.4 s after `docker kill` with a 45 s timeout (issue #19).
        # Expiring after one sweep keeps the worst case at timeout + sweep. A look that outlasts
        # it is harmless: each message is put back in a WATCH transaction, once.
        "unacked_mutex_expire": sweep,
    }


def create_app() -> Celery:
    settings = get_settings()
    app = Celery("workers", broker=settings.broker_url, include=["workers.lifecycle", "workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # The database is the record of every outcome; Celery results would only duplicate it.
        task_ignore_result=True,
        result_backend=None,
        task_queues=[Queue(CPU_QUEUE), Queue(GPU_QUEUE), Queue(PREDICT_QUEUE)],
        task_default_queue=CPU_QUEUE,
        # Where each task goes and how long it may run: set here only (producers pass no queue).
        task_routes=(route_task,),
        task_annotations={
            PROCESS_VIDEO_TASK: {"soft_time_limit": settings.cpu_task_soft_limit_s,
                                 "time_limit": settings.cpu_task_hard_limit_s},
            TRAIN_TASK: {"soft_time_limit": settings.gpu_task_soft_limit_s,
                         "time_limit": settings.gpu_task_hard_limit_s},
            EVALUATE_TASK: {"soft_time_limit": settings.gpu_task_soft_limit_s,
                            "time_limit": settings.gpu_task_hard_limit_s},
            # Acknowledged late like a video (a killed worker's judgement comes back, the claim in the
            # database makes the second delivery finish it once): the limits stay under the visibility timeout.
            JUDGE_TASK: {"soft_time_limit": settings.predict_task_soft_limit_s,
                         "time_limit": settings.predict_task_hard_limit_s},
        },
        # Acknowledge after the work, and requeue when the process running it dies (SIGKILL,
        # OOM): acks_late alone does not requeue such a task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One task reserved per process: a slow video never holds others hostage, and a dead worker
        # takes only what it runs. Embedded mode has one worker, no redelivery to wait for, and a
        # broker it polls: a second task held per process saves that poll between videos (~10 ms
        # of ~0.3 s, paid by the other core's process with two workers: docs/benchmarks.md).
        worker_prefetch_multiplier=2 if settings.embedded else 1,
        # Flower builds its view from events: workers send task events, producers "sent" ones.
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        # Celery 6 will default to True: on a lost broker connection, cancel (kill) the running
        # late-acknowledged tasks, because AMQP redelivers their messages at once. Redis does not: it
        # keeps them in its `unacked` hash until the visibility timeout (17 min). Cancelling would
        # throw away videos that are about to finish and make them wait that long; carrying on
        # finishes them (tests/test_faults.py: a 5 s Redis outage, every video run once). The ack
        # that cannot reach the lost connection costs one more delivery after the timeout, which
        # process_video skips with one read (the video is finished).
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options=broker_transport_options(settings),
        # A new child builds and traces MTCNN before it reports ready (workers/lifecycle.py):
        # ~1 s alone, several seconds on a loaded machine; the default 4 s would kill it.
        worker_proc_alive_timeout=60,
        worker_hijack_root_logger=False,
    )
    return app


try:
    app = create_app()
except InputError as exc:
    # Every Celery process (workers, Flower, healthchecks) starts by importing this module: a setting
    # it cannot use (a placeholder password of .env.example) ends it with one line and exit 2, as the
    # CLI does, instead of Celery's traceback of a failed import.
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
