"""A run's model for serving: SavedModel or TFLite, taking raw RGB uint8 crops of the run's size.

The export takes what `predict` has after cropping: uint8 RGB crops (N, S, S, 3), S the run's
image size; it returns the fake probability of each, shape (N, 1). Preprocessing is part of the
export, so a server never needs this project's code (the notebook this project replaces fed its
model the wrong preprocessing at prediction time).

Coordination with the model rewrite (branch train-gpu): a model that already contains its own
preprocessing (a top-level layer whose name starts with ``preprocess``, or a uint8 input) is
exported as it is; today's models (named ``deepfake_<backbone>``) get the backbone's
``preprocess_input`` wrapped around them. Either way nothing is applied twice.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

FORMATS = ("savedmodel", "tflite")
ENDPOINT = "serve"
INPUT_NAME = "images"
PREPROCESSING_LAYER_PREFIX = "preprocess"
SERVING_FILE = "serving.json"
TFLITE_FILE = "model.tflite"


def includes_preprocessing(model) -> bool:
    """True when the model itself turns raw 0-255 RGB into its input (see the module docstring)."""
    if any(layer.name.lower().startswith(PREPROCESSING_LAYER_PREFIX) for layer in model.layers):
        return True
    dtype = getattr(model.inputs[0], "dtype", None) if getattr(model, "inputs", None) else None
    return str(dtype) in ("uint8", "<dtype: 'uint8'>")


def model_image_size(model) -> int:
    return int(model.input_shape[1])


def raw_input_function(model, backbone: str | None):
    """``f(images) -> probabilities (N, 1)`` for raw RGB images (uint8 or float 0-255 tensors)."""
    import tensorflow as tf

    from shared.preprocessing import preprocess

    wrapped = not includes_preprocessing(model)
    if wrapped and backbone is None:
        raise ValueError("the model has no preprocessing inside: its backbone must be given")

    def probabilities(images):
        x = tf.cast(images, tf.float32)
        if wrapped:
            x = preprocess(x, backbone)
        return tf.cast(model(x, training=False), tf.float32)

    return probabilities


def export_model(model, dest: str | Path, fmt: str, *, backbone: str | None, threshold: float | None = None,
                 run_id: str | None = None) -> dict:
    """Write the export into the directory ``dest`` (created; must be empty if it exists).

    savedmodel: a TensorFlow SavedModel whose ``serve`` (also ``serving_default``) signature
    takes ``images`` uint8 (None, S, S, 3). tflite: ``model.tflite`` with the same input.
    Both get ``serving.json`` (input, output, threshold, backbone). Returns that description
    with the written paths.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest}: exists and is not an empty directory")
    dest.mkdir(parents=True, exist_ok=True)
    size = model_image_size(model)
    if fmt == "savedmodel":
        _write_savedmodel(model, dest, backbone, size)
        artifact = dest
    else:
        with tempfile.TemporaryDirectory(prefix="export-") as tmp:
            saved = Path(tmp) / "savedmodel"
            _write_savedmodel(model, saved, backbone, size)
            artifact = dest / TFLITE_FILE
            artifact.write_bytes(_convert_to_tflite(saved))
    description = {
        "format": fmt,
        "path": str(artifact),
        "run_id": run_id,
        "backbone": backbone,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, size, size, 3],
                  "meaning": "RGB face crops, 0-255, cut as the run's ingest cut them"},
        "output": {"shape": [None, 1], "meaning": "fake probability of each crop; a video's is their mean"},
        "threshold": threshold,
        "preprocessing": "inside the model" if includes_preprocessing(model) else f"{backbone} preprocess_input, added by the export",
    }
    (dest / SERVING_FILE).write_text(json.dumps(description, indent=2))
    return description


def _write_savedmodel(model, path: Path, backbone: str | None, size: int) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=ENDPOINT,
        fn=raw_input_function(model, backbone),
        input_signature=[tf.TensorSpec(shape=(None, size, size, 3), dtype=tf.uint8, name=INPUT_NAME)],
    )
    archive.write_out(str(path), verbose=False)


def _convert_to_tflite(saved_dir: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir), signature_keys=[ENDPOINT])
    return converter.convert()


def load_export(path: str | Path):
    """``f(images_uint8 (N, S, S, 3)) -> probabilities (N,)`` from an export directory or file, for
    checks and examples (a server would load the SavedModel or TFLite file its own way)."""
    import tensorflow as tf

    path = Path(path)
    tflite = path / TFLITE_FILE if path.is_dir() else path
    if tflite.suffix == ".tflite" and tflite.is_file():
        interpreter = tf.lite.Interpreter(model_path=str(tflite))
        runner = interpreter.get_signature_runner(ENDPOINT)
        input_name = next(iter(runner.get_input_details()))

        def run_tflite(images):
            images = np.asarray(images, dtype=np.uint8)
            # One crop at a time: the converted signature has a fixed batch of one on some builds.
            out = [next(iter(runner(**{input_name: images[i:i + 1]}).values())) for i in range(len(images))]
            return np.concatenate(out).reshape(-1).astype(np.float32) if out else np.zeros(0, np.float32)

        return run_tflite

    loaded = tf.saved_model.load(str(path))
    serve = getattr(loaded, ENDPOINT)

    def run_savedmodel(images):
        images = tf.convert_to_tensor(np.asarray(images, dtype=np.uint8))
        return np.asarray(serve(images)).reshape(-1).astype(np.float32)

    run_savedmodel.loaded = loaded  # keep the loaded object alive
    return run_savedmodel
