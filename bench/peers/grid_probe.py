"""Face recall and detection cost of our MTCNN with three pyramids, same frames (issue #20).

    python bench/peers/grid_probe.py DATASET [--videos N] [--grids ours package-grid package] [--out FILE]

In one process with one thread, as a worker child runs it (detector built and traced first): each
video through `extract_face_crops` at the field's protocol (32 frames, aligned, largest face, 256 px)
once per pyramid, alternating which goes first:
  ours          workers.detector.pyramid_scales: from 12 / min_face (0.315, 0.223, ... on a 944x500
                video at the default min_face_fraction), each level 0.709 smaller
  package-grid  the mtcnn package's levels (12 / 20 px * 0.709**k) without those above 12 / min_face
                (0.302, 0.214, ...): as many levels, the same cost
  package       the package's whole default pyramid (from 0.6, whatever the minimum face)
Reports frames with a crop at the confidence floor (--min-confidence, default the setting's 0.95;
the DFDC-style peer keeps MTCNN's every face, i.e. 0.8) and at 0.90, the frames only one of the first two grids found, and CPU seconds per video
(time.process_time: other processes on a shared machine do not inflate it much).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def package_levels(width: int, height: int, min_face_size: float, scale_factor: float = 0.709) -> list[float]:
    """The package's levels, (12 / 20) * 0.709**k, from the first not above 12 / min_face_size (k < 0
    under 20 px) down to the last that leaves the shorter side at least 12 px."""
    k = math.ceil(math.log((12 / min_face_size) / 0.6) / math.log(scale_factor) - 1e-9)
    scales = []
    while min(width, height) * 0.6 * scale_factor**k >= 12:
        scales.append(0.6 * scale_factor**k)
        k += 1
    return scales


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--videos", type=int, default=0, help="the first N videos (sorted); 0: all")
    parser.add_argument("--grids", nargs="+", default=["ours", "package-grid"],
                        choices=["ours", "package-grid", "package"])
    parser.add_argument("--min-confidence", type=float, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import workers.detector as detector
    import workers.ingest as ingest
    from shared.ingest_params import IngestParams
    from workers.lifecycle import configure_threads, warm_up_detector

    configure_threads(1)
    warm_up_detector()
    ours = detector.pyramid_scales
    every = {"ours": ours, "package-grid": package_levels,
             "package": lambda w, h, m: package_levels(w, h, detector.DEFAULT_MIN_FACE)}
    grids = {name: every[name] for name in args.grids}
    params = IngestParams.from_settings(frames=32, align=True, largest_face=True, size=256)
    floor = params.min_confidence if args.min_confidence is None else args.min_confidence
    # One run per grid at the lower of the floor and 0.90; the other count is taken from its crops.
    params = IngestParams.from_settings(frames=32, align=True, largest_face=True, size=256,
                                        min_confidence=min(floor, 0.9))
    videos = sorted(args.dataset.rglob("*.mp4"))
    videos = videos[: args.videos] if args.videos else videos
    found = {name: set() for name in grids}
    found_090 = {name: set() for name in grids}
    cpu = {name: 0.0 for name in grids}
    sampled = 0
    for n, path in enumerate(videos):
        rel = str(path.relative_to(args.dataset))
        order = list(grids) if n % 2 == 0 else list(grids)[::-1]
        for name in order:
            detector.pyramid_scales = grids[name]
            t0 = time.process_time()
            result = ingest.extract_face_crops(path, params)
            cpu[name] += time.process_time() - t0
            found[name] |= {(rel, crop.frame_index) for crop in result.crops if crop.confidence >= floor}
            found_090[name] |= {(rel, crop.frame_index) for crop in result.crops if crop.confidence >= 0.9}
        sampled += result.frames_sampled
    detector.pyramid_scales = ours
    first, second = list(grids)[:2]
    report = {"videos": len(videos), "frames_sampled": sampled, "confidence_floor": floor,
              "frames_with_a_crop": {name: len(f) for name, f in found.items()},
              "frames_with_a_crop_at_0.90": {name: len(f) for name, f in found_090.items()},
              f"only_{first}": sorted(found[first] - found[second]),
              f"only_{second}": sorted(found[second] - found[first]),
              "cpu_s_per_video": {name: round(c / len(videos), 3) for name, c in cpu.items()},
              "min_face_fraction": params.min_face_fraction, "detect_max_side": params.detect_max_side,
              "load_avg": os.getloadavg()}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
