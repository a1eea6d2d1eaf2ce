"""Export for serving (SavedModel, TFLite) and Grad-CAM contact sheets, on small untrained models."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

SIZE = 32


@pytest.fixture(scope="module")
def model():
    """Shaped like build_model's models (a nested backbone, pooling, a sigmoid unit, named
    deepfake_<backbone> so its preprocessing is known) but small, and without batch norm: an
    untrained MobileNetV2 gives every crop 0.5 in inference mode (issue #11), which would make a
    comparison of probabilities meaningless."""
    import keras

    keras.utils.set_random_seed(1)
    image = keras.Input((SIZE, SIZE, 3))
    x = image
    for i, filters in enumerate((8, 16, 16, 16)):  # 32 -> 16 -> 8 -> 4 -> 2
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    backbone = keras.Model(image, x, name="backbone")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    outputs = keras.layers.Dense(1, activation="sigmoid", name="fake_probability")(x)
    return keras.Model(inputs, outputs, name="deepfake_mobilenetv2")


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).integers(0, 256, size=(5, SIZE, SIZE, 3), dtype=np.uint8)


def keras_probabilities(model, crops):
    from workers.training.inference import predict_probabilities

    return predict_probabilities(model, crops)


@pytest.mark.parametrize("fmt, tolerance", [("savedmodel", 1e-4), ("tflite", 1e-3)])
def test_export_takes_raw_uint8_crops_and_matches_keras(model, crops, tmp_path, fmt, tolerance):
    from workers.training.export import SERVING_FILE, export_model, load_export

    described = export_model(model, tmp_path / fmt, fmt, threshold=0.42, run_id="r1")

    served = load_export(tmp_path / fmt)(crops)
    expected = keras_probabilities(model, crops)
    assert served.shape == (len(crops),)
    np.testing.assert_allclose(served, expected, atol=tolerance)
    assert np.ptp(expected) > 0  # the check means something only if the crops score differently
    serving = json.loads((tmp_path / fmt / SERVING_FILE).read_text())
    assert serving == json.loads(json.dumps(described))
    assert serving["input"]["dtype"] == "uint8" and serving["input"]["shape"] == [None, SIZE, SIZE, 3]
    assert serving["threshold"] == 0.42 and "added by the export" in serving["preprocessing"]


def test_a_model_with_preprocessing_inside_is_not_preprocessed_twice(crops, tmp_path):
    import keras

    from workers.training.export import export_model, load_export
    from workers.training.inference import preprocesses_itself

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocessing")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    raw_model = keras.Model(inputs, outputs)
    assert preprocesses_itself(raw_model)

    export_model(raw_model, tmp_path / "raw", "savedmodel")

    expected = raw_model(crops.astype("float32"), training=False).numpy().reshape(-1)
    np.testing.assert_allclose(load_export(tmp_path / "raw")(crops), expected, atol=1e-5)


def test_export_refuses_a_non_empty_directory_and_unknown_formats(model, tmp_path):
    from workers.training.export import export_model

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        export_model(model, tmp_path / "taken", "savedmodel")
    with pytest.raises(ValueError, match="format"):
        export_model(model, tmp_path / "new", "onnx")


def test_gradcam_gives_the_model_probabilities_and_normalised_maps(model, crops):
    from workers.training.explain import gradcam

    probabilities, heatmaps = gradcam(model, crops)

    np.testing.assert_allclose(probabilities, keras_probabilities(model, crops), atol=1e-4)
    assert heatmaps.shape == (len(crops), SIZE, SIZE)
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0 + 1e-6


def test_contact_sheet_is_a_png(crops, tmp_path):
    from workers.training.explain import contact_sheet

    heat = np.tile(np.linspace(0, 1, SIZE, dtype=np.float32), (len(crops), SIZE, 1))
    path = contact_sheet(crops, heat, [0.1, 0.9, 0.5, 0.2, 0.7], tmp_path / "sheet.png",
                         title="clip.mp4: fake (0.48 >= threshold 0.40)", threshold=0.4)

    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000


def test_export_model_command_checks_its_arguments_before_loading_anything(tmp_path):
    from click.testing import CliRunner

    from orchestrator.cli import main

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    runner = CliRunner()

    too_many = runner.invoke(main, ["export-model", "run", str(tmp_path / "a"), str(tmp_path / "b")])
    not_empty = runner.invoke(main, ["export-model", str(tmp_path / "taken"), "--format", "tflite"])
    bad_format = runner.invoke(main, ["export-model", str(tmp_path / "new"), "--format", "onnx"])

    assert too_many.exit_code == 2 and "[RUN_ID] DIR" in too_many.output
    assert not_empty.exit_code == 2 and "not an empty directory" in not_empty.output
    assert bad_format.exit_code == 2


def test_a_blank_heatmap_is_captioned_as_no_evidence():
    from workers.training.explain import overlay_caption

    assert overlay_caption(np.zeros((8, 8), np.float32)) == "no evidence for fake found"
    assert overlay_caption(np.eye(8, dtype=np.float32)) == "evidence for fake"
