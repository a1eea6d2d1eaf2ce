"""Judging new videos with a trained run: the ingest's own sampling, detection and cropping,
then the run's model (which holds its preprocessing; older models get it applied outside)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from shared.storage import local_copy
from workers.ingest import IngestParams, extract_face_crops
from workers.video import VideoError


def judge_video(path: Path | str, model, *, params: IngestParams, threshold: float = 0.5,
                detector=None, explain_dir: Path | str | None = None, aggregate: str = "mean",
                detail: bool = False) -> dict:
    """{"video", "fake_probability", "label", "faces", "threshold", "aggregate", "crop_probabilities"},
    and "explanation" (the contact sheet's path) with ``explain_dir``; no verdict when no face is found.
    With ``detail``, "scores": each crop's time, frame, face and probability (a judgement's record).

    The verdict: fake when the video's score under ``aggregate`` (workers/training/aggregate.py;
    mean: the mean fake probability of the crops) is >= ``threshold`` (the run's for that rule,
    chosen on its validation part)."""
    from workers.training.aggregate import video_scores
    from workers.training.inference import predict_probabilities

    crops = extract_face_crops(path, params, detector=detector).crops
    result = {"video": str(path), "fake_probability": None, "label": None, "faces": len(crops),
              "threshold": threshold, "aggregate": aggregate, "crop_probabilities": []}
    if detail:
        result["scores"] = []
    if not crops:
        return result
    images = np.stack([cv2.cvtColor(c.image_bgr, cv2.COLOR_BGR2RGB) for c in crops])
    probabilities = predict_probabilities(model, images)
    probability = float(video_scores([0] * len(crops), probabilities, rule=aggregate,
                                     frames=[c.frame_index for c in crops]).scores[0])
    label = "fake" if probability >= threshold else "real"
    result.update(fake_probability=round(probability, 6), label=label,
                  crop_probabilities=[round(float(p), 6) for p in probabilities])
    if detail:
        result["scores"] = [{"t": round(c.timestamp_s, 3), "frame": c.frame_index, "face": c.face_index,
                             "p": round(float(p), 6)} for c, p in zip(crops, probabilities)]
    if explain_dir is not None:
        from workers.training.explain import contact_sheet, gradcam

        _, heatmaps = gradcam(model, images)
        captions = [f"t={c.timestamp_s:.1f}s" for c in crops]
        sheet = new_sheet_path(Path(explain_dir), Path(path).stem)
        contact_sheet(images, heatmaps, probabilities, sheet, captions=captions, threshold=threshold,
                      title=f"{Path(path).name}: {label.upper()} (fake probability {probability:.3f}, "
                            f"threshold {threshold:.3f}, {len(crops)} faces)")
        result["explanation"] = str(sheet)
    return result


def new_sheet_path(explain_dir: Path, stem: str) -> Path:
    """``DIR/<stem>.png``, or ``<stem>-2.png``, ``-3`` … : a file already there (the user's, or the
    sheet of another video with the same base name) is never overwritten. The name is taken with
    an exclusive create, so two predictions into one folder cannot pick the same one."""
    explain_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        sheet = explain_dir / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
        try:
            sheet.open("xb").close()
            return sheet
        except FileExistsError:
            continue
    raise FileExistsError(f"{explain_dir}: no free name for {stem}.png")


def judge_videos(videos: list[Path | str], run, explain_dir: Path | str | None = None,
                 aggregate: str | None = None) -> list[dict]:
    """Every video judged by a finished run's model, with the ingest parameters its crops were made
    with (recorded in the run's config) and its verdict threshold (``judge_video``) for the video
    rule ``aggregate`` (default: the run's own)."""
    from workers.training.inference import load_model

    params = IngestParams.from_dict(run.config.get("ingest"))
    model = load_model(local_copy(run.artifacts["model"]))
    aggregate = aggregate or run.config.get("aggregate", "mean")
    stored = ((run.metrics or {}).get("aggregations") or {}).get(aggregate) or {}
    threshold = stored.get("threshold", run.config.get("threshold", 0.5))
    results = []
    for path in videos:
        try:
            results.append(judge_video(path, model, params=params,
                                       threshold=threshold, explain_dir=explain_dir, aggregate=aggregate))
        except VideoError as exc:
            raise VideoError(f"{path}: {exc}") from None
    return results
