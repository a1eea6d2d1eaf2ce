"""A trained model, loaded and asked: what it takes (``model_input``) and what it says (``predict_probabilities``).

One place answers "what does this saved model expect?": its image size, its backbone, and whether it
preprocesses itself. `predict`, `evaluate` (the run's test part and other datasets), `explain` and
`export` all ask ``model_input``, so none of them can feed a model another preprocessing than its
own. The model describes itself: its preprocessing layer records its backbone (whose registry entry,
shared/backbones.py, says the rest); a model saved before preprocessing moved into the model says it
in its name ("deepfake_<backbone>"). No caller passes a backbone beside a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from shared.backbones import BACKBONES
from shared.errors import InputError
from workers.training.data import make_dataset
from workers.training.models import MODEL_NAME_PREFIX, BackbonePreprocessing

# A top-level layer whose name starts with this turns raw 0-255 RGB into the model's input
# (``build_model`` names its BackbonePreprocessing layer "preprocessing").
PREPROCESSING_LAYER_PREFIX = "preprocess"


@dataclass(frozen=True)
class ModelInput:
    """What a model takes: RGB crops of ``image_size`` pixels, preprocessed for ``backbone`` by the
    model itself (``preprocesses_itself``) or by its caller (``preprocess_for``)."""

    image_size: int
    backbone: str | None
    preprocesses_itself: bool

    @property
    def preprocess_for(self) -> str | None:
        """The backbone whose preprocessing the caller applies; None when the model does it."""
        return None if self.preprocesses_itself else self.backbone


def load_model(path: str | Path) -> keras.Model:
    """A trained model for prediction (no optimizer state needed), loaded in Keras' safe mode.

    Models saved before preprocessing moved into the model load too: ``model_input`` says so.
    A file that does not load (or that safe mode refuses, e.g. a ``Lambda`` layer) raises
    InputError, a ValueError, with one line: the CLI prints it and exits 2."""
    try:
        import keras_hub  # noqa: F401 - registers its layers, for models on a keras-hub encoder
    except ImportError:
        pass
    try:
        return keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types, with multi-line messages
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise InputError(f"cannot load the model {path}: {text}") from exc


def model_input(model: keras.Model) -> ModelInput:
    """What ``model`` takes, as the model itself says. A model that takes preprocessed input and
    does not say for which backbone is a ValueError: fed another backbone's preprocessing it would
    predict garbage without failing."""
    built_on = model_backbone(model)
    inside = preprocesses_itself(model)
    if not inside and built_on is None:
        raise ValueError(
            f"model {model.name!r} takes preprocessed input and does not say for which backbone (its name "
            f"is not deepfake_<backbone> with a backbone one of {', '.join(BACKBONES)})"
        )
    return ModelInput(image_size=int(model.input_shape[1]), backbone=built_on, preprocesses_itself=inside)


def preprocesses_itself(model: keras.Model) -> bool:
    """True when the model turns raw 0-255 RGB into its input: ``build_model``'s preprocessing
    layer, another top-level layer named ``preprocess...``, or a uint8 input."""
    if _preprocessing_layer(model) is not None:
        return True
    if any(layer.name.lower().startswith(PREPROCESSING_LAYER_PREFIX) for layer in model.layers):
        return True
    dtype = getattr(model.inputs[0], "dtype", None) if getattr(model, "inputs", None) else None
    return str(dtype) in ("uint8", "<dtype: 'uint8'>")


def model_backbone(model: keras.Model) -> str | None:
    """The backbone a ``build_model`` model was built on (its preprocessing layer, else its
    name says), else None."""
    layer = _preprocessing_layer(model)
    if layer is not None:
        return layer.backbone
    name = model.name.removeprefix(MODEL_NAME_PREFIX)
    return name if model.name.startswith(MODEL_NAME_PREFIX) and name in BACKBONES else None


def _preprocessing_layer(model: keras.Model) -> BackbonePreprocessing | None:
    for layer in model.layers:
        if isinstance(layer, BackbonePreprocessing):
            return layer
    return None


def predict_probabilities(
    model: keras.Model,
    source: Sequence[str | Path] | np.ndarray,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Fake probability of each crop, in the order of ``source``: crop file paths, or RGB
    uint8 crops in memory ((N, H, W, 3), or one (H, W, 3)), resized to the model's size.

    Models built here preprocess inside themselves and get the crops as they are; an older
    one gets its backbone's preprocessing first (``model_input``)."""
    takes = model_input(model)
    if isinstance(source, np.ndarray) and source.ndim == 3:
        source = source[np.newaxis]
    if len(source) == 0:
        return np.zeros(0, dtype=np.float32)
    dataset = make_dataset(
        source,
        None,
        batch_size=batch_size,
        training=False,
        image_size=takes.image_size,
        cache=False,
        preprocess_for=takes.preprocess_for,
    )
    return model.predict(dataset, verbose=0).reshape(-1).astype(np.float32)
