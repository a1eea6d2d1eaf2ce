"""Judging new videos with a trained run: the ingest's own sampling, detection and cropping,
then the run's model (which holds its preprocessing; older models get it applied outside)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from workers.ingest import IngestParams, extract_face_crops


def load_run_model(model_path: str | Path):
    from workers.training.fit import load_model

    return load_model(model_path)


def judge_video(path: Path | str, model, *, backbone: str, params: IngestParams, threshold: float = 0.5,
                detector=None) -> dict:
    """{"video", "fake_probability", "label", "faces"}; no verdict when no face is found."""
    from workers.training.fit import predict_probabilities

    crops = extract_face_crops(path, params, detector=detector).crops
    result = {"video": str(path), "fake_probability": None, "label": None, "faces": len(crops)}
    if not crops:
        return result
    images = np.stack([cv2.cvtColor(c.image_bgr, cv2.COLOR_BGR2RGB) for c in crops])
    probabilities = predict_probabilities(model, images, backbone=backbone)
    probability = float(np.mean(probabilities))
    result.update(fake_probability=round(probability, 6), label="fake" if probability >= threshold else "real")
    return result
