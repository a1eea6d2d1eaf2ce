"""The classifier: raw RGB uint8 crops -> augmentation (training only) -> the backbone's
preprocessing -> a backbone of the registry (shared/backbones.py), pooling (global average over a
CNN's map, the class token of a ViT), dropout, one sigmoid unit.

Augmentation and preprocessing are layers of the model, so they run on the accelerator
next to the backbone, and a saved model takes the crops as they come off the disk:
``model.predict`` needs no preprocessing call and cannot be fed the wrong one. Both are
registered Keras layers (no ``Lambda``), so saved models load in Keras' safe mode; they
use ``keras.ops`` only, so the same model also runs on the JAX backend (bench/gpu_check.sh).

This module imports Keras but not TensorFlow.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import keras
from keras import ops

from shared.backbones import (DEFAULT_BACKBONE, KERAS_APPLICATIONS, KERAS_HUB, TUNE_HEAD, TUNE_LAYERNORM,
                              backbone_entry, notop_weights_file)
from shared.preprocessing import check_backbone, preprocessing_constants

# What the user may pass as --weights besides a path (or, for a keras-hub backbone, a preset name):
# "imagenet" and "pretrained" both mean the entry's own pretrained weights.
IMAGENET, PRETRAINED = "imagenet", "pretrained"
NO_WEIGHTS = "none"
# A saved model describes itself: its preprocessing layer records the backbone (and so everything
# its registry entry says); models that take preprocessed input are named "deepfake_<backbone>"
# (workers/training/inference.py reads both).
MODEL_NAME_PREFIX = "deepfake_"
# Names of the layers in front of the backbone.
AUGMENTATION_LAYER, PREPROCESSING_LAYER = "augmentation", "preprocessing"
# Augmentation strength, close to the notebook's ImageDataGenerator settings
# (rotation up to 20 degrees either way, shifts up to 10% of the side, horizontal flips).
ROTATION_DEGREES = 20.0
SHIFT_FRACTION = 0.1


class WeightsUnavailableError(RuntimeError):
    """The requested backbone weights cannot be loaded (offline, missing or unreadable file)."""


@keras.saving.register_keras_serializable(package="deepfake")
class BackbonePreprocessing(keras.layers.Layer):
    """RGB crops in [0, 255] (any dtype) -> float32 input of ``backbone``: the constants of
    backbone's registry entry, the same numbers ``preprocess()`` applies."""

    def __init__(self, backbone: str = DEFAULT_BACKBONE, **kwargs):
        kwargs["dtype"] = "float32"  # also under mixed precision: the backbone casts after
        super().__init__(**kwargs)
        self.backbone = check_backbone(backbone)
        self._reverse, self._scale, self._offset = preprocessing_constants(self.backbone)

    def call(self, images):
        images = ops.cast(images, "float32")
        if self._reverse:
            images = ops.flip(images, axis=-1)
        return images * ops.convert_to_tensor(self._scale, "float32") + ops.convert_to_tensor(self._offset, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


@keras.saving.register_keras_serializable(package="deepfake")
class CropAugmentation(keras.layers.Layer):
    """Random rotation, shift and horizontal flip of a batch of crops, active in training only.

    The three are folded into one affine map per image and applied as one bilinear warp,
    edge pixels repeated outside the crop (Keras' fill_mode="nearest"). Keras' own
    RandomRotation/RandomTranslation would do two warps and mark themselves not
    XLA-compilable (``supports_jit = False``), which turns XLA off for the whole model;
    this layer is gathers and arithmetic, so it compiles. Outside training it only casts
    to float32. Input: (N, H, W, C) in [0, 255]; output float32, same shape.
    """

    def __init__(self, rotation_degrees: float = ROTATION_DEGREES, shift_fraction: float = SHIFT_FRACTION,
                 flip: bool = True, seed: int | None = None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.rotation_degrees = float(rotation_degrees)
        self.shift_fraction = float(shift_fraction)
        self.flip = bool(flip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        images = ops.cast(images, "float32")
        if not training:
            return images
        return self._warp(images)

    def _warp(self, images):
        height, width, channels = images.shape[1], images.shape[2], images.shape[3]
        batch = ops.shape(images)[0]
        angle_max = math.radians(self.rotation_degrees)
        angle = keras.random.uniform((batch,), -angle_max, angle_max, seed=self.seed_generator)
        shift = keras.random.uniform((batch, 2), -self.shift_fraction, self.shift_fraction,
                                     seed=self.seed_generator)
        flip = keras.random.uniform((batch,), 0.0, 1.0, seed=self.seed_generator) < (0.5 if self.flip else 0.0)

        def per_image(value):
            return ops.reshape(value, (-1, 1, 1))

        # For each output pixel, the source position: undo the flip, then the shift, then the
        # rotation about the centre (output = flip(shift(rotate(input))), as the layers did).
        rows, cols = ops.meshgrid(ops.arange(height, dtype="float32"), ops.arange(width, dtype="float32"),
                                  indexing="ij")
        cols = ops.where(per_image(flip), (width - 1.0) - cols, cols)
        cols = cols - per_image(shift[:, 0] * width)
        rows = rows - per_image(shift[:, 1] * height)
        centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        cos, sin = per_image(ops.cos(angle)), per_image(ops.sin(angle))
        dx, dy = cols - centre_x, rows - centre_y
        src_x = cos * dx + sin * dy + centre_x
        src_y = -sin * dx + cos * dy + centre_y

        x0, y0 = ops.floor(src_x), ops.floor(src_y)
        wx, wy = ops.expand_dims(src_x - x0, -1), ops.expand_dims(src_y - y0, -1)
        flat = ops.reshape(images, (-1, channels))
        base = per_image(ops.arange(batch, dtype="int32") * (height * width))

        def pixels(y, x):  # nearest fill: coordinates clamped to the crop
            y = ops.cast(ops.clip(y, 0.0, height - 1.0), "int32")
            x = ops.cast(ops.clip(x, 0.0, width - 1.0), "int32")
            index = ops.reshape(base + y * width + x, (-1,))
            return ops.reshape(ops.take(flat, index, axis=0), (-1, height, width, channels))

        top = pixels(y0, x0) * (1.0 - wx) + pixels(y0, x0 + 1.0) * wx
        bottom = pixels(y0 + 1.0, x0) * (1.0 - wx) + pixels(y0 + 1.0, x0 + 1.0) * wx
        return top * (1.0 - wy) + bottom * wy

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation_degrees": self.rotation_degrees,
                "shift_fraction": self.shift_fraction, "flip": self.flip, "seed": self.seed}


@keras.saving.register_keras_serializable(package="deepfake")
class ClassToken(keras.layers.Layer):
    """(N, tokens, width) -> (N, width): the first (class) token of a ViT's output sequence."""

    def call(self, tokens):
        return tokens[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def build_model(
    backbone: str = DEFAULT_BACKBONE,
    weights: str | Path | None = IMAGENET,
    image_size: int = 128,
    dropout: float = 0.3,
    learning_rate: float = 1e-4,
    mixed_precision: bool = False,
    *,
    jit_compile: bool = False,
    augment: bool = True,
    preprocessing: bool = True,
    seed: int | None = None,
    base: keras.Model | None = None,
    tune: str | None = None,
) -> keras.Model:
    """A compiled real(0)/fake(1) classifier on ``backbone``, taking RGB uint8 crops.

    ``weights``: "imagenet"/"pretrained" (the registry entry's weights: Keras downloads ImageNet
    ones once into ~/.keras/models, keras-hub its preset), "none" (random init), the path of a
    local include_top=False ``.h5`` file, or for a keras-hub backbone a preset name or directory.
    ``tune``: what trains (a choice of the entry's ``tunes``; None: its default): "all", "head"
    (the backbone frozen: a linear probe), "layernorm" (only the backbone's LayerNorm scales and
    biases, plus the head).
    ``mixed_precision`` builds the model under the "mixed_float16" policy (useful on a GPU
    only); the global policy is restored afterwards. Augmentation, preprocessing and the
    output unit stay float32. ``jit_compile``: XLA for training, evaluation and prediction.
    ``augment=False`` leaves out the augmentation layer; ``preprocessing=False`` builds a
    model that takes preprocessed float input, as models saved before preprocessing moved
    into the model did (benchmarks compare both). ``seed`` seeds the augmentation.
    ``base``: a model to use as the backbone instead of ``keras.applications`` (tests);
    ``backbone`` still picks the preprocessing and the name.
    Build under ``strategy.scope()`` to train on several devices.
    Raises ValueError for an unknown backbone, WeightsUnavailableError for weights that
    cannot be had.
    """
    entry = backbone_entry(backbone)
    backbone = entry.name
    tune = tune or entry.tunes[0]
    if tune not in entry.tunes:
        raise ValueError(f"--tune {tune} is not offered for {backbone}: choose one of {', '.join(entry.tunes)}")
    keras_weights = _resolve_weights(backbone, weights, image_size) if base is None else None
    policy = "mixed_float16" if mixed_precision else keras.mixed_precision.global_policy().name
    with _dtype_policy(policy):
        if base is None:
            base = _build_backbone(backbone, keras_weights, image_size)
        inputs = keras.Input(shape=(image_size, image_size, 3), dtype="uint8" if preprocessing else "float32",
                             name="image")
        features = inputs
        if augment:
            features = CropAugmentation(seed=seed, name=AUGMENTATION_LAYER)(features)
        if preprocessing:
            features = BackbonePreprocessing(backbone, name=PREPROCESSING_LAYER)(features)
        features = base(features)
        if len(features.shape) == 4:
            features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        else:
            features = ClassToken(name="pool")(features)
        features = keras.layers.Dropout(dropout, name="dropout")(features)
        outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_probability")(
            features
        )
        model = keras.Model(inputs, outputs, name=f"{MODEL_NAME_PREFIX}{backbone}")
        _set_trainable(base, tune)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
            jit_compile=bool(jit_compile),
        )
    return model


def backbone_layer(model: keras.Model) -> keras.layers.Layer:
    """The backbone sub-model (e.g. for Grad-CAM): the first nested model of ``model``."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"model {model.name!r} has no backbone sub-model")


def trainable_parameters(model: keras.Model) -> int:
    """How many numbers training changes (what --tune left trainable)."""
    return int(sum(math.prod(v.shape) for v in model.trainable_weights))


def _set_trainable(base: keras.Model, tune: str) -> None:
    base.trainable = tune != TUNE_HEAD
    if tune != TUNE_LAYERNORM:
        return
    norms = {id(v) for layer in base._flatten_layers() if isinstance(layer, keras.layers.LayerNormalization)
             for v in layer.weights}
    if not norms:
        raise ValueError(f"--tune {TUNE_LAYERNORM}: the backbone {base.name!r} has no LayerNormalization layer")
    for variable in base.weights:
        variable.trainable = id(variable) in norms


def _resolve_weights(backbone: str, weights: str | Path | None, image_size: int) -> str | None:
    """Map the user's --weights value to what the entry's builder takes: None (random), the
    entry's pretrained weights (ImageNet, a keras-hub preset), a file or a preset directory."""
    entry = backbone_entry(backbone)
    if weights is None or str(weights).lower() == NO_WEIGHTS:
        return None
    if str(weights).lower() in (IMAGENET, PRETRAINED):
        if entry.weights is None:
            raise WeightsUnavailableError(f"the {backbone} backbone has no pretrained weights: use --weights none")
        return entry.weights
    path = Path(weights).expanduser()
    if entry.source == KERAS_HUB:
        if path.is_dir():
            return str(path)
        if "/" in str(weights) or "\\" in str(weights):
            raise WeightsUnavailableError(f"no keras-hub preset directory at {path}")
        return str(weights)  # another preset name
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights file not found: {path} (expected a local include_top=False .h5 for "
            f"{backbone}, e.g. {notop_weights_file(backbone, image_size)}; or use --weights none)"
        )
    return str(path)


def _build_backbone(backbone: str, weights: str | None, image_size: int) -> keras.Model:
    entry = backbone_entry(backbone)
    if entry.source == KERAS_HUB:
        return _keras_hub_backbone(entry, weights, image_size)
    if entry.source != KERAS_APPLICATIONS:  # a function of this project, "module:function"
        import importlib

        module, function = entry.builder.split(":")
        if weights is not None:
            raise WeightsUnavailableError(f"the {backbone} backbone has no pretrained weights: use --weights none")
        return getattr(importlib.import_module(module), function)(image_size)
    model_class = getattr(keras.applications, entry.builder)
    try:
        return model_class(include_top=False, input_shape=(image_size, image_size, 3), weights=weights)
    except Exception as exc:
        if weights == IMAGENET and _is_download_failure(exc):
            raise WeightsUnavailableError(
                f"cannot download ImageNet weights for {backbone} (offline?): use --weights none "
                f"for random init, or --weights PATH to a local {notop_weights_file(backbone, image_size)} "
                f"(or put that file in {_keras_models_dir()})"
            ) from exc
        if weights not in (None, IMAGENET):
            raise WeightsUnavailableError(
                f"cannot load {backbone} weights from {weights}: {_one_line(exc)}"
            ) from exc
        raise


def _keras_hub_backbone(entry, weights: str | None, image_size: int) -> keras.Model:
    """A keras-hub encoder: from a preset (name or local directory; a whole CLIP model gives its
    vision encoder), or with random weights in the preset's architecture (``entry.config``)."""
    try:
        import keras_hub
    except ImportError as exc:
        raise WeightsUnavailableError(f"{entry.name} needs keras-hub: pip install keras-hub") from exc
    if weights is None:
        return getattr(keras_hub.models, entry.builder)(**entry.config, image_shape=(image_size, image_size, 3))
    try:
        encoder = keras_hub.models.Backbone.from_preset(weights)
    except Exception as exc:  # noqa: BLE001 - keras-hub and kagglehub raise many types
        raise WeightsUnavailableError(
            f"cannot load the keras-hub preset {weights} for {entry.name}: {_one_line(exc)} (offline? pass "
            f"--weights DIR, a preset saved with save_to_preset, or --weights none)") from exc
    encoder = getattr(encoder, "vision_encoder", encoder)
    side = encoder.input_shape[1]
    if side != image_size:
        raise WeightsUnavailableError(
            f"the {entry.name} preset {weights} takes {side} px images: use --image-size {side}")
    return encoder


def _keras_models_dir() -> Path:
    """Where keras.utils.get_file looks for downloaded weights."""
    return Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "models"


def _is_download_failure(exc: Exception) -> bool:
    # keras.utils.get_file raises a plain Exception("URL fetch failure on ...") when offline.
    message = str(exc)
    return isinstance(exc, OSError) or "URL fetch failure" in message or "corrupted" in message


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


@contextmanager
def _dtype_policy(name: str):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
