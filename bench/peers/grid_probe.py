"""Our face recall and detection cost with the pyramid before and after issue #20's fix, same frames.

    python bench/peers/grid_probe.py DATASET [--videos N] [--out FILE]

In one process with one thread, as a worker child runs it (detector built and traced first): each
video through `extract_face_crops` at the field's protocol (32 frames, aligned, largest face, 256 px)
once with the old grid (scales from 12 / min_face, each 0.709 smaller) and once with the current
`workers.detector.pyramid_scales` (the mtcnn package's grid without the levels for faces under the
minimum), alternating which goes first. Reports frames with a crop, the frames only one of them
found, and CPU seconds per video (time.process_time: other processes on a shared machine do not
inflate it much).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def old_grid(width: int, height: int, min_face_size: float, scale_factor: float = 0.709) -> list[float]:
    """The pyramid before issue #20: the first level maps min_face_size onto the 12 px window."""
    m = 12 / min_face_size
    scales, k = [], 0
    while min(width, height) * m * scale_factor**k >= 12:
        scales.append(m * scale_factor**k)
        k += 1
    return scales


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--videos", type=int, default=0, help="the first N videos (sorted); 0: all")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import workers.detector as detector
    import workers.ingest as ingest
    from shared.ingest_params import IngestParams
    from workers.lifecycle import configure_threads, warm_up_detector

    configure_threads(1)
    warm_up_detector()
    grids = {"old": old_grid, "new": detector.pyramid_scales}
    params = IngestParams.from_settings(frames=32, align=True, largest_face=True, size=256)
    videos = sorted(args.dataset.rglob("*.mp4"))
    videos = videos[: args.videos] if args.videos else videos
    found = {name: set() for name in grids}
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
            found[name] |= {(rel, crop.frame_index) for crop in result.crops}
        sampled += result.frames_sampled
    detector.pyramid_scales = grids["new"]
    report = {"videos": len(videos), "frames_sampled": sampled,
              "frames_with_a_crop": {name: len(f) for name, f in found.items()},
              "only_old": sorted(found["old"] - found["new"]), "only_new": sorted(found["new"] - found["old"]),
              "cpu_s_per_video": {name: round(c / len(videos), 3) for name, c in cpu.items()},
              "min_face_fraction": params.min_face_fraction, "detect_max_side": params.detect_max_side,
              "load_avg": os.getloadavg()}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
