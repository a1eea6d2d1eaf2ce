"""Judging new videos with a trained run: the ingest's own sampling, detection and cropping,
then the run's model (which holds its preprocessing; older models get it applied outside)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from workers.ingest import IngestParams, extract_face_crops
from workers.video import VideoError


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


def judge_videos(videos: list[Path | str], run) -> list[dict]:
    """Every video judged by a finished run's model, with the ingest parameters its crops were made
    with (recorded in the run's config) and its verdict threshold."""
    params = IngestParams.from_dict(run.config.get("ingest"))
    model = load_run_model(run.artifacts["model"])
    results = []
    for path in videos:
        try:
            results.append(judge_video(path, model, backbone=run.config["backbone"], params=params,
                                       threshold=run.config.get("threshold", 0.5)))
        except VideoError as exc:
            raise VideoError(f"{path}: {exc}") from None
    return results
