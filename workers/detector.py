"""MTCNN (the ``mtcnn`` 1.0.0 package) run faster and with a working ``min_face_size``.

A thin wrapper, not a fork: it reuses the package's networks, weights and NumPy box code
(proposal decoding, its own NMS, square resizing, landmark mapping), and changes only two things:

- **The scale pyramid.** ``mtcnn.utils.images.build_scale_pyramid`` counts its scales from the
  image size alone and then multiplies them by ``m = 12 / min_face_size``; with
  ``min_face_size`` above ~20 the last scales shrink the image under PNet's 12 px window, PNet
  raises, and ``detect_faces`` swallows the error and returns no face at all (field notes).
  :func:`pyramid_scales` counts from the scaled size instead: scales ``m * factor**k`` while
  ``min_side * m * factor**k >= 12``.
- **Compiled stages.** The package calls its Keras models eagerly: one Python-level call per
  layer for every pyramid scale, RNet and ONet batch. Here each stage is one ``tf.function``
  with relaxed shapes (any batch, any frame size), so one trace per process covers every video
  and the per-call overhead of the eager layers is gone. The resize of each pyramid level
  (``tf.image.resize``, area) and the patch extraction (``crop_and_resize``) run inside the
  same compiled calls, exactly as the package does them eagerly.

The output rows are the package's own: ``[image, x1, y1, x2, y2, confidence, 5 x, 5 y]`` in the
pixels of the images given.
"""

from __future__ import annotations

import gc
import sys
from typing import Sequence

import numpy as np

PNET_WINDOW = 12
SCALE_FACTOR = 0.709  # the package's default pyramid step
DEFAULT_MIN_FACE = 20  # the package's default min_face_size (pixels of the image given)

# The package's thresholds (StagePNet/StageRNet/StageONet defaults).
THRESHOLD_PNET, NMS_PNET1, NMS_PNET2 = 0.6, 0.5, 0.7
THRESHOLD_RNET, NMS_RNET = 0.7, 0.7
THRESHOLD_ONET, NMS_ONET = 0.8, 0.7


# Packages that Keras imports, when they are installed, at its own import (TensorFlow imports Keras
# eagerly): its plotting helpers, its scikit-learn wrapper and its notebook file editor. MTCNN and
# the worker never use them through Keras, and they were a third of the CPU time of `import mtcnn`
# (matplotlib.pyplot, scikit-learn with SciPy's stats, IPython: docs/benchmarks.md, issue #20).
KERAS_OPTIONAL_IMPORTS = ("matplotlib", "sklearn", "IPython")


def import_mtcnn():
    """Import TensorFlow, Keras and the ``mtcnn`` package with Keras's optional imports
    (``KERAS_OPTIONAL_IMPORTS``) seen as absent: Keras takes its ``except ImportError`` path for
    each, as where they are not installed. They stay importable afterwards (this process's plots
    import matplotlib themselves); only Keras's wrappers around them (``keras.visualization``,
    ``keras.wrappers.SKLearn*``) are unavailable in this process. Where Keras is already
    imported, this is a plain import."""
    if "keras" not in sys.modules:
        hidden = [name for name in KERAS_OPTIONAL_IMPORTS if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # `import name` raises ImportError
        # The import makes a few hundred thousand objects and none of them is garbage: the cyclic
        # collector's passes over them were a fifth of its wall time (docs/benchmarks.md, issue #20).
        collecting = gc.isenabled()
        gc.disable()
        try:
            import mtcnn
        finally:
            if collecting:
                gc.enable()
            for name in hidden:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
    import mtcnn

    return mtcnn


def pyramid_scales(width: int, height: int, min_face_size: float = DEFAULT_MIN_FACE,
                   scale_factor: float = SCALE_FACTOR) -> list[float]:
    """Scales of the image pyramid: the first maps a face of ``min_face_size`` pixels onto PNet's
    12 px window, each next one is ``scale_factor`` smaller, and the last still leaves the image's
    shorter side at least 12 px (a level below that is what makes the package's PNet raise).
    Empty when even the first level is too small (an image smaller than the minimum face)."""
    if min_face_size <= 0:
        raise ValueError("min_face_size must be positive")
    m = PNET_WINDOW / min_face_size
    min_side = min(width, height)
    scales = []
    k = 0
    while min_side * m * scale_factor**k >= PNET_WINDOW:
        scales.append(m * scale_factor**k)
        k += 1
    return scales


def _level_size(height: int, width: int, scale: float) -> tuple[int, int]:
    # tf.image.resize truncates a float size, as the package's apply_scales passes it.
    return int(height * scale), int(width * scale)


class FastMTCNN:
    """MTCNN with a working pyramid and compiled stages. Built in the process that uses it (a
    worker child, never the prefork parent: field notes)."""

    def __init__(self, mtcnn=None):
        package = import_mtcnn()
        import tensorflow as tf

        if mtcnn is None:
            mtcnn = package.MTCNN(stages="face_and_landmarks_detection")
        self.mtcnn = mtcnn  # the package's detector: its eager path stays usable for comparison
        pnet, rnet, onet = (stage.model for stage in mtcnn.stages)
        image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)

        @tf.function(input_signature=[image_spec, tf.TensorSpec([2], tf.int32)], autograph=False)
        def pnet_level(images, size):
            level = tf.image.resize(images, size, method=tf.image.ResizeMethod.AREA)
            return pnet(level)  # box regression, face/no-face probabilities

        def patch_stage(model, patch):
            @tf.function(input_signature=[image_spec, tf.TensorSpec([None, 4], tf.float32),
                                          tf.TensorSpec([None], tf.int32)], autograph=False)
            def run(images, boxes, box_images):
                patches = tf.image.crop_and_resize(images, boxes, box_images, (patch, patch))
                return model(patches)

            return run

        self._pnet_level = pnet_level
        self._rnet = patch_stage(rnet, 24)
        self._onet = patch_stage(onet, 48)

    def warm_up(self) -> None:
        """Trace every stage once (any frame size is then served without tracing again)."""
        images = np.zeros((1, 24, 48, 3), np.float32)
        self._pnet_level(images, np.asarray([12, 24], np.int32))
        boxes = np.asarray([[0.0, 0.0, 1.0, 0.5]], np.float32)
        self._rnet(images, boxes, np.zeros(1, np.int32))
        self._onet(images, boxes, np.zeros(1, np.int32))

    def detect_faces(self, *args, **kwargs):
        """The package's own ``MTCNN.detect_faces`` (eager, its JSON rows), for callers that want it."""
        return self.mtcnn.detect_faces(*args, **kwargs)

    def detect(self, images_rgb: Sequence[np.ndarray], min_face_size: float = DEFAULT_MIN_FACE) -> np.ndarray:
        """Faces in same-sized RGB uint8 images: rows ``[image, x1, y1, x2, y2, confidence,
        x1..x5, y1..y5]`` (landmarks: left eye, right eye, nose, mouth left, mouth right)."""
        import tensorflow as tf
        from mtcnn.utils.bboxes import (adjust_bboxes, generate_bounding_box, pick_matches, resize_to_square,
                                        smart_nms_from_bboxes, upscale_bboxes)
        from mtcnn.utils.landmarks import adjust_landmarks

        empty = np.empty((0, 16))
        if len(images_rgb) == 0:
            return empty
        height, width = images_rgb[0].shape[:2]
        if any(image.shape[:2] != (height, width) for image in images_rgb):
            raise ValueError("all images of one call must have the same size")
        scales = pyramid_scales(width, height, min_face_size)
        if not scales:
            return empty
        # The package's normalisation, in float32 (it computes it in float64 and TF casts), as one
        # tensor for every call below (converting the NumPy batch per call cost ~10 %).
        batch = tf.constant((np.stack(images_rgb).astype(np.float32) - 127.5) / 128.0)
        count = int(batch.shape[0])

        # Stage 1: PNet on every level, proposals in image pixels, NMS per level then across levels.
        per_level = []
        for scale in scales:
            reg, cls = self._pnet_level(batch, np.asarray(_level_size(height, width, scale), np.int32))
            proposals = generate_bounding_box(reg, cls, THRESHOLD_PNET)
            proposals = upscale_bboxes(proposals, np.asarray([scale] * count))
            per_level.append(smart_nms_from_bboxes(proposals, threshold=NMS_PNET1, method="union",
                                                   initial_sort=False))
        boxes = np.concatenate(per_level, axis=0)
        if boxes.shape[0] == 0:
            return empty
        boxes = resize_to_square(smart_nms_from_bboxes(boxes, threshold=NMS_PNET2, method="union", initial_sort=True))

        # Stage 2: RNet refines the proposals.
        offsets, scores = self._rnet(batch, *_crop_args(boxes, height, width))
        boxes[:, -1] = scores.numpy()[:, -1]
        boxes = pick_matches(adjust_bboxes(boxes, offsets.numpy()), score_threshold=THRESHOLD_RNET)
        if boxes.shape[0] == 0:
            return empty
        boxes = resize_to_square(smart_nms_from_bboxes(boxes, threshold=NMS_RNET, method="union",
                                                       initial_sort=True))

        # Stage 3: ONet gives the final boxes, confidences and the five landmarks.
        offsets, landmarks, scores = self._onet(batch, *_crop_args(boxes, height, width))
        landmarks = adjust_landmarks(landmarks, boxes)
        boxes[:, -1] = scores.numpy()[:, -1]
        boxes = adjust_bboxes(boxes, offsets.numpy())
        boxes = np.concatenate([boxes, landmarks], axis=-1)
        boxes = pick_matches(boxes, scores_column=5, score_threshold=THRESHOLD_ONET)
        if boxes.shape[0] == 0:
            return empty
        return smart_nms_from_bboxes(boxes, threshold=NMS_ONET, method="min", initial_sort=True)


def _crop_args(boxes: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The package's extract_patches arguments: boxes as [y1, x1, y2, x2] normalised to the image."""
    norm = boxes[:, [2, 1, 4, 3]] / np.asarray([[height, width, height, width]])
    return norm.astype(np.float32), boxes[:, 0].astype(np.int32)


def eager_detect(mtcnn, images_rgb: Sequence[np.ndarray], min_face_size: float = DEFAULT_MIN_FACE) -> np.ndarray:
    """The package's own eager path (``detect_faces`` without post-processing), rows as
    :meth:`FastMTCNN.detect` gives them: the reference the compiled path is tested against."""
    rows = mtcnn.detect_faces(list(images_rgb), output_type="numpy", postprocess=False, box_format="xyxy",
                              min_face_size=min_face_size)
    return np.asarray(rows).reshape(-1, 16) if len(rows) else np.empty((0, 16))


def min_face_pixels(width: int, height: int, fraction: float) -> float:
    """The minimum face size in pixels of a width x height image: ``fraction`` of its shorter
    side, never under the package's default of 20 px (0 keeps that default)."""
    return max(float(DEFAULT_MIN_FACE), fraction * min(width, height))


