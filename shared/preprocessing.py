"""The one image preprocessing used by training, evaluation and prediction.

A face crop is RGB, 0-255, 128x128. Before it reaches a model it goes through
``preprocess(images, backbone)``, which applies that backbone's own
``keras.applications.<module>.preprocess_input``. Nothing else may rescale images: the
notebook this project replaces divided by 255 at prediction time after training with
ResNet50's caffe-mode preprocessing, and its predictions were meaningless.

TensorFlow is imported inside the functions so that ``import shared.preprocessing``
stays cheap for code that only needs the names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEFAULT_BACKBONE = "resnet50"

# Backbone name -> (keras.applications model class, module holding its preprocess_input).
# resnet50: caffe mode (RGB->BGR, ImageNet mean subtracted, no scaling);
# efficientnetb0: passthrough, the model rescales inside; mobilenetv2: scaled to [-1, 1].
_BACKBONE_KERAS_NAMES = {
    "resnet50": ("ResNet50", "resnet50"),
    "efficientnetb0": ("EfficientNetB0", "efficientnet"),
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2"),
    # A small CNN for training from scratch on a CPU (workers/training/tiny.py); inputs in [-1, 1].
    "tiny": (None, "mobilenet_v2"),
}
BACKBONES = tuple(_BACKBONE_KERAS_NAMES)


def check_backbone(backbone: str) -> str:
    """Return ``backbone`` lower-cased, or raise ValueError naming the supported ones."""
    name = str(backbone).lower()
    if name not in _BACKBONE_KERAS_NAMES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}")
    return name


def backbone_class(backbone: str):
    """The ``keras.applications`` model class (e.g. ``ResNet50``) of a backbone name."""
    import keras

    class_name, _ = _BACKBONE_KERAS_NAMES[check_backbone(backbone)]
    return getattr(keras.applications, class_name)


def preprocess_function(backbone: str):
    """The backbone's ``keras.applications.<module>.preprocess_input``."""
    import keras

    _, module_name = _BACKBONE_KERAS_NAMES[check_backbone(backbone)]
    return getattr(keras.applications, module_name).preprocess_input


def preprocess(images, backbone: str = DEFAULT_BACKBONE):
    """RGB images in [0, 255] -> float32 model input for ``backbone``.

    ``images``: uint8 or float, shape (N, H, W, 3) or (H, W, 3), a NumPy array or a
    TensorFlow tensor (also a symbolic one inside a ``tf.data`` map). NumPy in, NumPy out;
    tensor in, tensor out. The caller's array is never modified.
    """
    preprocess_input = preprocess_function(backbone)
    if _is_tensor(images):
        import tensorflow as tf

        if images.shape.rank is not None and images.shape[-1] not in (None, 3):
            raise ValueError(f"expected RGB images (last axis 3), got shape {images.shape}")
        return preprocess_input(tf.cast(images, tf.float32))

    # A copy: keras's NumPy path works in place on float arrays.
    array = np.array(images, dtype=np.float32, copy=True)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise ValueError(f"expected RGB images (H, W, 3) or (N, H, W, 3), got shape {array.shape}")
    return np.asarray(preprocess_input(array), dtype=np.float32)


def decode_crop(image_bytes, size: int = 128):
    """Encoded PNG/JPEG bytes (a scalar string tensor) -> uint8 RGB tensor (size, size, 3).

    Grey and RGBA files become RGB; other sizes are resized with antialiasing. Graph-safe:
    the ``tf.data`` pipeline and ``load_crop`` both decode through here.
    """
    import tensorflow as tf

    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])

    def resized():
        scaled = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)

    already_sized = tf.reduce_all(tf.equal(tf.shape(image)[:2], [size, size]))
    image = tf.cond(already_sized, lambda: tf.cast(image, tf.uint8), resized)
    return tf.ensure_shape(image, [size, size, 3])


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
