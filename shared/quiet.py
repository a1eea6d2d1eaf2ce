"""Keeping TensorFlow's native start-up chatter off a person's terminal."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

# Logging from OpenCV's FFmpeg ("moov atom not found") and TensorFlow's C++ side goes straight to
# file descriptor 2; a failed video is already reported, in one line, by our own code.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def native_stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block (Python exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_tensorflow():
    """Import TensorFlow and start its runtime once, without the absl/oneDNN banner lines."""
    with native_stderr_silenced():
        import tensorflow as tf

        tf.constant(0)
    return tf
