"""The `tiny` backbone: built like the others, no pretrained weights, batch-norm momentum 0.9."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def test_tiny_builds_a_model_named_for_its_preprocessing():
    import keras

    from workers.training.inference import model_backbone
    from workers.training.models import build_model

    model = build_model("tiny", weights="none", image_size=64)

    assert model.name == "deepfake_tiny" and model_backbone(model) == "tiny"
    assert model.predict(np.zeros((2, 64, 64, 3), np.float32), verbose=0).shape == (2, 1)
    norms = [layer for layer in model.get_layer("tiny").layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == 0.9 for layer in norms)
    assert model.get_layer("tiny").output.shape[1:3] == (8, 8)  # fine enough for Grad-CAM


def test_tiny_has_no_pretrained_weights():
    from workers.training.models import WeightsUnavailableError, build_model

    with pytest.raises(WeightsUnavailableError, match="weights none"):
        build_model("tiny", weights="imagenet", image_size=64)
