"""What a lower confidence floor lets in: false faces at 0.80-0.95 (issue #20).

    python bench/peers/false_faces_probe.py [--frames-per-video 8] [--out FILE]

The DFDC-style peer keeps every face MTCNN returns (>= 0.8); our ingest keeps >= 0.95
(`MIN_CONFIDENCE`). This runs the ingest's own detector (`workers.faces.detect_faces`, floor 0, the
default `DETECT_MAX_SIDE` and `MIN_FACE_FRACTION`) on frames of the bench's size (944x500) and counts,
per floor:
  - faceless frames: scikit-image's bundled photographs with no person in them (a cat, coffee, a
    rocket, coins, bricks, ...), its LFW subset's 100 non-face patches (upscaled into a frame), and the
    sample videos' own backgrounds (shared/sample_data): a frame with any face kept is a false one;
  - frames with one known face (the sample videos' renderer, which knows where it put the face):
    a kept face whose box overlaps the true one by IoU < 0.3 is false, and the frame is wrong for the
    field's protocol when the largest face kept is a false one.
Faces under the floor are dropped before the largest is chosen, as in the ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import iou  # noqa: E402  (the peers bench's own box overlap)

FLOORS = (0.80, 0.85, 0.90, 0.95)
FRAME_SIZE = (944, 500)
SKIMAGE_SCENES = ("chelsea", "coffee", "rocket", "coins", "brick", "grass", "gravel", "moon", "page", "text",
                  "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo", "horse", "clock",
                  "cell", "checkerboard", "binary_blobs")


def letterbox(image: np.ndarray, size: tuple[int, int], background: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 image scaled to fit size (w, h), centred on background (grey when None)."""
    if image.dtype != np.uint8:
        image = np.clip(image * (255 if image.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    image = image[..., :3]
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    frame = np.full((height, width, 3), 128, np.uint8) if background is None else background.copy()
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    frame[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return frame


def faceless_frames() -> dict[str, list[np.ndarray]]:
    import skimage.data

    from shared import sample_data

    scenes = []
    for name in SKIMAGE_SCENES:
        try:
            scenes.append(letterbox(np.asarray(getattr(skimage.data, name)()), FRAME_SIZE))
        except Exception:  # a picture that would need a download: skipped
            continue
    backgrounds = [sample_data._background(FRAME_SIZE, np.random.default_rng([7, k])) for k in range(60)]
    lfw_nonfaces = [letterbox(p, (250, 250)) for p in skimage.data.lfw_subset()[100:]]
    lfw_frames = []
    for k, patch in enumerate(lfw_nonfaces):
        frame = backgrounds[k % len(backgrounds)].copy()
        x, y = 100 + 6 * k, 120
        frame[y:y + 250, x:x + 250] = patch
        lfw_frames.append(frame)
    return {"skimage scenes": scenes, "sample backgrounds": backgrounds, "LFW non-faces": lfw_frames}


def frames_with_known_faces(per_video: int) -> list[tuple[np.ndarray, tuple]]:
    from shared import sample_data

    faces = sample_data.load_face_images()
    out = []
    for k, face in enumerate(faces[:48]):
        plan = sample_data._plan_video(face, FRAME_SIZE, 0, f"probe/{k}.mp4")
        for i in range(per_video):
            out.append(sample_data._render_real_frame(plan, i * 0.5))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames-per-video", type=int, default=8, help="frames of each of the 48 face videos")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from shared.settings import get_settings
    from workers.faces import detect_faces

    settings = get_settings()

    def detect(frame_rgb: np.ndarray):
        return detect_faces([cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)], min_confidence=0.0,
                            max_side=settings.detect_max_side, min_face_fraction=settings.min_face_fraction)[0]

    report: dict = {"floors": FLOORS, "frame_size": FRAME_SIZE, "detect_max_side": settings.detect_max_side,
                    "min_face_fraction": settings.min_face_fraction, "faceless": {}, "with_a_face": {}}
    for group, frames in faceless_frames().items():
        confidences = [[f.confidence for f in detect(frame)] for frame in frames]
        report["faceless"][group] = {
            "frames": len(frames),
            "frames_with_a_false_face": {f"{floor:.2f}": sum(any(c >= floor for c in cs) for cs in confidences)
                                         for floor in FLOORS},
            "false_confidences": sorted(round(c, 3) for cs in confidences for c in cs if c >= min(FLOORS)),
        }
    known = frames_with_known_faces(args.frames_per_video)
    per_floor = {f"{floor:.2f}": {"true_face_kept": 0, "false_faces_kept": 0, "largest_kept_is_false": 0}
                 for floor in FLOORS}
    for frame, truth in known:
        faces = detect(frame)
        for floor in FLOORS:
            kept = [f for f in faces if f.confidence >= floor]
            row = per_floor[f"{floor:.2f}"]
            hits = [iou((f.box.x, f.box.y, f.box.w, f.box.h), truth) >= 0.3 for f in kept]
            row["true_face_kept"] += any(hits)
            row["false_faces_kept"] += hits.count(False)
            if kept:
                largest = max(range(len(kept)), key=lambda j: kept[j].box.w * kept[j].box.h)
                row["largest_kept_is_false"] += not hits[largest]
    report["with_a_face"] = {"frames": len(known), "per_floor": per_floor}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
