"""What a worker does around its tasks: load libraries before the fork, models after it, and on
GPU workers, take back training runs whose holder went silent."""

from __future__ import annotations

import gc
import logging

from celery import bootsteps
from celery.signals import celeryd_after_setup, worker_process_init

from shared.process import command_queue
from shared.settings import get_settings
from workers.celery_app import CPU_QUEUE, GPU_QUEUE, PREDICT_QUEUE, app
from workers.planning.runs import dispatch_run
from workers.training.lease import take_back_expired_runs

log = logging.getLogger(__name__)
_consumes_cpu_queue = False


class LeaseSweep(bootsteps.StartStopStep):
    """In every cluster worker that consumes the gpu queue: every TRAIN_HEARTBEAT_S, take back the runs
    whose lease expired (workers/training/lease.py). Runs on the worker's timer (its main thread), so
    no thread is alive in a process that forks pool children."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        if command_queue(GPU_QUEUE) not in worker.app.amqp.queues.consume_from or get_settings().embedded:
            # Embedded mode: the local worker lives for one command; it must not pick up a run an
            # earlier, interrupted command left behind (`orchestrator train --resume RUN` does).
            return
        self.tref = worker.timer.call_repeatedly(get_settings().train_heartbeat_s, self.sweep, priority=10)

    def sweep(self):
        try:
            take_back_expired_runs(dispatch_run)
        except Exception as exc:  # the database or broker blinked: the next sweep tries again
            log.warning("lease sweep failed: %s", exc)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


# This module is imported (the app's `include`) before a worker builds its steps.
app.steps["worker"].add(LeaseSweep)


def configure_threads(threads: int) -> None:
    """Threads TensorFlow, OpenCV and FFmpeg's decoder may use in this process (0 leaves their defaults)."""
    if threads <= 0:
        return
    import cv2
    import tensorflow as tf

    from workers.video import set_decode_threads

    cv2.setNumThreads(threads)
    set_decode_threads(threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime is already running in this process: too late, keep going
        log.warning("TensorFlow was initialised before its thread count could be set")


def warm_up_detector() -> None:
    """Build MTCNN and trace its compiled stages once, so a worker's first video costs what the
    others do. The stages take any frame size and batch (relaxed shapes): this one trace serves
    every video, whatever its resolution; the first call on a new size only sets up that size's
    kernels (measured in docs/benchmarks.md)."""
    from workers.faces import get_detector

    get_detector().warm_up()


@celeryd_after_setup.connect
def _preload_in_parent(sender, instance, **_kwargs) -> None:
    """Import TensorFlow and MTCNN's code in the parent, before the fork: the children share
    those pages and start fast. No model is built here: a detector built before the fork
    makes every task in the children hang (field notes)."""
    global _consumes_cpu_queue
    # Judging detects faces as ingest does: a predict worker's children get the detector ready too.
    _consumes_cpu_queue = bool({command_queue(CPU_QUEUE), command_queue(PREDICT_QUEUE)}
                               & set(instance.app.amqp.queues.consume_from))
    if _consumes_cpu_queue:
        from workers.detector import import_mtcnn

        import_mtcnn()  # TensorFlow, Keras, MTCNN's code
        # What the parent holds now lives as long as the worker: the children's collections skip it
        # (and so leave its shared pages unwritten).
        gc.freeze()


@worker_process_init.connect
def _prepare_child(**_kwargs) -> None:
    from db.session import reset_engine

    reset_engine()  # never share the parent's database connections
    if _consumes_cpu_queue:
        # One process per core on CPU workers; a training process keeps every core.
        configure_threads(get_settings().worker_threads)
        warm_up_detector()
