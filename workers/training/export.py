"""A run's model for serving: SavedModel or TFLite, taking raw RGB uint8 crops of the run's size.

The export takes what `predict` has after cropping: uint8 RGB crops (N, S, S, 3), S the run's
image size; it returns the fake probability of each, shape (N, 1). Preprocessing is part of the
export, so a server never needs this project's code (the notebook this project replaces fed its
model the wrong preprocessing at prediction time).

A model that preprocesses itself is exported as it is; an older one gets its backbone's
preprocessing wrapped around it (``inference.model_input`` says which). Nothing is applied twice.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

FORMATS = ("savedmodel", "tflite")
ENDPOINT = "serve"
INPUT_NAME = "images"
SERVING_FILE = "serving.json"
TFLITE_FILE = "model.tflite"


def raw_input_function(model, preprocess_for: str | None):
    """``f(images) -> probabilities (N, 1)`` for raw RGB images (uint8 or float 0-255 tensors);
    ``preprocess_for``: the backbone whose preprocessing goes in front (None: the model's own)."""
    import tensorflow as tf

    from shared.preprocessing import preprocess

    def probabilities(images):
        x = tf.cast(images, tf.float32)
        if preprocess_for is not None:
            x = preprocess(x, preprocess_for)
        return tf.cast(model(x, training=False), tf.float32)

    return probabilities


def export_model(model, dest: str | Path, fmt: str, *, threshold: float | None = None,
                 run_id: str | None = None) -> dict:
    """Write the export into the directory ``dest`` (created; must be empty if it exists).

    savedmodel: a TensorFlow SavedModel whose ``serve`` (also ``serving_default``) signature
    takes ``images`` uint8 (None, S, S, 3). tflite: ``model.tflite`` with the same input.
    Both get ``serving.json`` (input, output, threshold, backbone). Returns that description
    with the written paths.
    """
    from workers.training.inference import model_input

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest}: exists and is not an empty directory")
    takes = model_input(model)
    dest.mkdir(parents=True, exist_ok=True)
    size = takes.image_size
    if fmt == "savedmodel":
        _write_savedmodel(model, dest, takes)
        artifact = dest
    else:
        with tempfile.TemporaryDirectory(prefix="export-") as tmp:
            saved = Path(tmp) / "savedmodel"
            _write_savedmodel(model, saved, takes)
            artifact = dest / TFLITE_FILE
            artifact.write_bytes(_convert_to_tflite(saved))
    description = {
        "format": fmt,
        "path": str(artifact),
        "run_id": run_id,
        "backbone": takes.backbone,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, size, size, 3],
                  "meaning": "RGB face crops, 0-255, cut as the run's ingest cut them"},
        "output": {"shape": [None, 1], "meaning": "fake probability of each crop; a video's is their mean"},
        "threshold": threshold,
        "preprocessing": ("inside the model" if takes.preprocesses_itself
                          else f"{takes.backbone} preprocess_input, added by the export"),
    }
    (dest / SERVING_FILE).write_text(json.dumps(description, indent=2))
    return description


def _write_savedmodel(model, path: Path, takes) -> None:
    import keras
    import tensorflow as tf

    size = takes.image_size
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=ENDPOINT,
        fn=raw_input_function(model, takes.preprocess_for),
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
