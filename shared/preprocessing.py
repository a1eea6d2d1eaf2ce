"""The one image preprocessing used by training, evaluation and prediction.

A face crop is RGB, 0-255. Each backbone expects its own preprocessing (e.g.
``keras.applications.<module>.preprocess_input``); its entry in ``shared/backbones.py`` writes it
as constants (channel order, scale, offset), checked against the library by the tests. Two users
read those constants and nothing else:

- ``BackbonePreprocessing`` (``workers/training/models.py``), the layer that models built
  since preprocessing moved into the model carry right after their input: they take raw
  RGB uint8 crops, so ``model.predict`` needs no preprocessing call;
- ``preprocess(images, backbone)`` here, for models saved before that change (they take
  preprocessed float input) and for tests.

Nothing else may rescale images: the notebook this project replaces divided by 255 at
prediction time after training with ResNet50's caffe-mode preprocessing, and its
predictions were meaningless.

TensorFlow is imported inside the functions so that ``import shared.preprocessing``
stays cheap for code that only needs the names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.backbones import BACKBONES, DEFAULT_BACKBONE, backbone_entry  # noqa: F401 - re-exported


def check_backbone(backbone: str) -> str:
    """Return ``backbone`` lower-cased, or raise ValueError naming the supported ones."""
    return backbone_entry(backbone).name


def preprocessing_constants(backbone: str) -> tuple[bool, tuple[float, float, float], tuple[float, float, float]]:
    """(reverse RGB->BGR, per-channel scale, per-channel offset) of ``backbone``: its registry entry
    (shared/backbones.py)."""
    return backbone_entry(backbone).preprocessing


def preprocess(images, backbone: str = DEFAULT_BACKBONE):
    """RGB images in [0, 255] -> float32 model input for ``backbone``.

    ``images``: uint8 or float, shape (N, H, W, 3) or (H, W, 3), a NumPy array or a
    TensorFlow tensor (also a symbolic one inside a ``tf.data`` map). NumPy in, NumPy out;
    tensor in, tensor out. The caller's array is never modified.
    """
    reverse, scale, offset = preprocessing_constants(backbone)
    if _is_tensor(images):
        import tensorflow as tf

        if images.shape.rank is not None and images.shape[-1] not in (None, 3):
            raise ValueError(f"expected RGB images (last axis 3), got shape {images.shape}")
        tensor = tf.cast(images, tf.float32)
        if reverse:
            tensor = tensor[..., ::-1]
        return tensor * tf.constant(scale, tf.float32) + tf.constant(offset, tf.float32)

    array = np.asarray(images, dtype=np.float32)  # the arithmetic below makes a new array
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"expected RGB images (H, W, 3) or (N, H, W, 3), got shape {array.shape}")
    if reverse:
        array = array[..., ::-1]
    return (array * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)).astype(np.float32, copy=False)


def decode_crop(image_bytes, size: int = 128):
    """Encoded PNG/JPEG bytes (a scalar string tensor) -> uint8 RGB tensor (size, size, 3).

    Grey and RGBA files become RGB; other sizes are resized with antialiasing. Graph-safe:
    the ``tf.data`` pipeline and ``load_crop`` both decode through here.
    """
    import tensorflow as tf

    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    return resize_crops(image[tf.newaxis], size)[0]


def resize_crops(crops, size: int):
    """uint8 RGB crops (N, H, W, 3) -> (N, size, size, 3): unchanged at that size, else resized
    bilinearly with antialiasing and rounded. Every source of crops (PNG files, packs, arrays) goes
    through here, so a crop gets the same pixels whichever way it reaches the model."""
    import tensorflow as tf

    crops = tf.convert_to_tensor(crops)

    def resized():
        scaled = tf.image.resize(crops, [size, size], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)

    already_sized = tf.reduce_all(tf.equal(tf.shape(crops)[1:3], [size, size]))
    crops = tf.cond(already_sized, lambda: tf.cast(crops, tf.uint8), resized)
    return tf.ensure_shape(crops, [None, size, size, 3])


def load_crop(path: str | Path, size: int = 128) -> np.ndarray:
    """Read one crop file as an RGB uint8 array of shape (size, size, 3)."""
    import tensorflow as tf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no crop file at {path}")
    return decode_crop(tf.io.read_file(str(path)), size).numpy()


def _is_tensor(value) -> bool:
    if isinstance(value, np.ndarray):
        return False
    import tensorflow as tf

    return tf.is_tensor(value)
