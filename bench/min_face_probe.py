"""Face recall and detector cost against the minimum face size (IngestParams.min_face_fraction).

    python bench/min_face_probe.py --out bench/out/min-face.json

Two sets, both detected as the ingest does it (frame shrunk to 480 px, confidence >= 0.95, the
compiled MTCNN stages, one thread):
  held-out  faces that the sample data does not use first (LFW crops outside its reliable list),
            pasted at known heights (8 % to 50 % of the frame's shorter side) into 944x500 frames
            made from scikit-image's photographs; a face counts as found when a detected box
            overlaps the pasted face box (IoU >= 0.3)
  sample    the sampled frames of the bench's Celeb-DF-like videos (shared/sample_data.py)
For each fraction: faces found per face height, and CPU milliseconds per frame, one frame per
call (medians of rounds, the fractions interleaved within each round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

FRAME = (944, 500)
HEIGHTS = (0.08, 0.10, 0.12, 0.15, 0.20, 0.25, 0.35, 0.50)  # face box height / frame's shorter side


def held_out_frames(faces_count: int, seed: int) -> list[tuple[np.ndarray, tuple, float]]:
    """(BGR frame, pasted face box x, y, w, h, relative height) for each face and height."""
    import skimage.data

    from shared.sample_data import _LFW_RELIABLE_FACES, load_face_images

    photos = [skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(), skimage.data.hubble_deep_field(),
              skimage.data.immunohistochemistry(), cv2.cvtColor(skimage.data.brick(), cv2.COLOR_GRAY2RGB)]
    backgrounds = [cv2.resize(p, FRAME, interpolation=cv2.INTER_AREA) for p in photos]
    reliable = {f"lfw_{i}" for i in _LFW_RELIABLE_FACES}
    faces = [f for f in load_face_images() if f.name.startswith("lfw_") and f.name not in reliable][:faces_count]
    rng = np.random.default_rng(seed)
    frames = []
    for k, face in enumerate(faces):
        for rel in HEIGHTS:
            target_h = rel * min(FRAME)
            zoom = target_h / face.face_box[3]
            patch = cv2.resize(face.image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
            ph, pw = patch.shape[:2]
            frame = backgrounds[(k + int(rel * 100)) % len(backgrounds)].copy()
            x0 = int(rng.integers(0, FRAME[0] - pw))
            y0 = int(rng.integers(0, max(1, FRAME[1] - ph)))
            frame[y0:y0 + ph, x0:x0 + pw] = patch[: FRAME[1] - y0]
            fx, fy, fw, fh = face.face_box
            box = (x0 + fx * zoom, y0 + fy * zoom, fw * zoom, fh * zoom)
            frames.append((cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), box, rel))
    return frames


def sample_frames(root: Path, videos: int) -> list[np.ndarray]:
    from shared.sample_data import make_sample_dataset
    from workers.video import SampledFrames, open_video

    summary = make_sample_dataset(root, reals_per_folder=max(1, videos // 4), fakes=max(1, videos // 2),
                                  seconds=13.0, fps=30.0, size=FRAME, seed=11)
    frames = []
    for paths in summary["videos"].values():
        for rel in paths:
            capture, info = open_video(root / rel)
            frames.extend(f.image_bgr for f in SampledFrames(capture, info.fps, 3.0))
            capture.release()
    return frames


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.08, 0.1, 0.12, 0.15, 0.2])
    parser.add_argument("--faces", type=int, default=40, help="held-out faces (each pasted at every height)")
    parser.add_argument("--videos", type=int, default=8, help="sample videos (5 sampled frames each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-side", type=int, default=480)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from workers.faces import detect_faces, get_detector
    from workers.lifecycle import configure_threads

    configure_threads(1)
    detector = get_detector()
    detector.warm_up()
    held_out = held_out_frames(args.faces, seed=5)
    sample = sample_frames(Path(tempfile.mkdtemp(prefix="min-face-")), args.videos)

    def run(frames, fraction):
        t0 = time.process_time()  # CPU time of this process: steadier than wall time on a shared machine
        found = [detect_faces([f], min_confidence=0.95, max_side=args.max_side, min_face_fraction=fraction,
                              detector=detector)[0] for f in frames]
        return found, (time.process_time() - t0) / len(frames)

    report = {"frame": f"{FRAME[0]}x{FRAME[1]}", "max_side": args.max_side, "held_out_frames": len(held_out),
              "sample_frames": len(sample), "fractions": {}}
    times = {f: {"held_out": [], "sample": []} for f in args.fractions}
    results = {}
    for _ in range(args.rounds):
        for fraction in args.fractions:
            found_h, ms_h = run([f for f, _, _ in held_out], fraction)
            found_s, ms_s = run(sample, fraction)
            times[fraction]["held_out"].append(ms_h)
            times[fraction]["sample"].append(ms_s)
            results[fraction] = (found_h, found_s)
    for fraction in args.fractions:
        found_h, found_s = results[fraction]
        per_height = {}
        for (_, box, rel), faces in zip(held_out, found_h):
            hit = any(iou(box, (f.box.x, f.box.y, f.box.w, f.box.h)) >= 0.3 for f in faces)
            per_height.setdefault(f"{rel:.2f}", [0, 0])
            per_height[f"{rel:.2f}"][0] += hit
            per_height[f"{rel:.2f}"][1] += 1
        report["fractions"][str(fraction)] = {
            "held_out_found_by_height": {k: f"{a}/{b}" for k, (a, b) in per_height.items()},
            "held_out_found": sum(a for a, _ in per_height.values()),
            "sample_frames_with_a_face": sum(1 for faces in found_s if faces),
            "sample_faces": sum(len(faces) for faces in found_s),
            "cpu_ms_per_frame_held_out": round(1000 * statistics.median(times[fraction]["held_out"]), 1),
            "cpu_ms_per_frame_sample": round(1000 * statistics.median(times[fraction]["sample"]), 1),
            "cpu_ms_rounds_sample": [round(1000 * t, 1) for t in times[fraction]["sample"]],
        }
        print(fraction, json.dumps(report["fractions"][str(fraction)]), flush=True)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
