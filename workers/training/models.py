"""The classifier: an ImageNet backbone, global average pooling, dropout, one sigmoid unit."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import keras

from shared.preprocessing import DEFAULT_BACKBONE, backbone_class, check_backbone

# What the user may pass as --weights besides a path.
IMAGENET = "imagenet"
NO_WEIGHTS = "none"
# Models are named "deepfake_<backbone>", so a saved model tells which preprocessing it needs.
MODEL_NAME_PREFIX = "deepfake_"


class WeightsUnavailableError(RuntimeError):
    """The requested backbone weights cannot be loaded (offline, missing or unreadable file)."""


def build_model(
    backbone: str = DEFAULT_BACKBONE,
    weights: str | Path | None = IMAGENET,
    image_size: int = 128,
    dropout: float = 0.3,
    learning_rate: float = 1e-4,
    mixed_precision: bool = False,
) -> keras.Model:
    """A compiled real(0)/fake(1) classifier on ``backbone``.

    ``weights``: "imagenet" (Keras downloads them once into ~/.keras/models), "none"
    (random init) or the path of a local include_top=False ``.h5`` file.
    ``mixed_precision`` builds the model under the "mixed_float16" policy (useful on a GPU
    only); the global policy is restored afterwards. The output unit stays float32.
    Raises ValueError for an unknown backbone, WeightsUnavailableError for weights that
    cannot be had.
    """
    backbone = check_backbone(backbone)
    keras_weights = _resolve_weights(backbone, weights, image_size)
    policy = "mixed_float16" if mixed_precision else keras.mixed_precision.global_policy().name
    with _dtype_policy(policy):
        base = _build_backbone(backbone, keras_weights, image_size)
        inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
        features = base(inputs)
        features = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        features = keras.layers.Dropout(dropout, name="dropout")(features)
        outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_probability")(
            features
        )
        model = keras.Model(inputs, outputs, name=f"{MODEL_NAME_PREFIX}{backbone}")
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
    return model


def notop_weights_file(backbone: str, image_size: int = 128) -> str:
    """Name of the include_top=False ImageNet file Keras downloads, for offline users to fetch."""
    backbone = check_backbone(backbone)
    if backbone == "resnet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    if backbone == "efficientnetb0":
        return "efficientnetb0_notop.h5"
    # MobileNetV2 has one file per input size; other sizes get the 224 one.
    rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


def _resolve_weights(backbone: str, weights: str | Path | None, image_size: int) -> str | None:
    """Map the user's --weights value to what keras.applications takes."""
    if weights is None or str(weights).lower() == NO_WEIGHTS:
        return None
    if str(weights).lower() == IMAGENET:
        return IMAGENET
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights file not found: {path} (expected a local include_top=False .h5 for "
            f"{backbone}, e.g. {notop_weights_file(backbone, image_size)}; or use --weights none)"
        )
    return str(path)


def _build_backbone(backbone: str, weights: str | None, image_size: int) -> keras.Model:
    if backbone == "tiny":
        if weights is not None:
            raise WeightsUnavailableError("the tiny backbone has no pretrained weights: use --weights none")
        from workers.training.tiny import tiny_backbone

        return tiny_backbone(image_size)
    model_class = backbone_class(backbone)
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
