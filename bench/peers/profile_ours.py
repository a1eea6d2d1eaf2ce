"""Where our task code spends a video at the field's protocol (32 frames, aligned, largest face, 256 px).

    python bench/peers/profile_ours.py DATASET [--videos 8] [--out FILE]

In one process with one thread, as a worker child runs it (detector built and traced first, not
counted): CPU seconds per video of `extract_face_crops` (decode, detect, align) plus the PNG encoding
the task does when it writes the crops, split by cProfile's cumulative time per stage.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

STAGES = {  # (file suffix, function name) -> stage
    ("workers/faces.py", "detect_faces"): "detect (MTCNN, incl. RGB + shrink)",
    ("workers/align.py", "align_face"): "align + resize to 256",
    ("workers/video.py", "__iter__"): "decode (sampler)",
    ("workers/video.py", "index_stream"): "keyframe index",
    ("workers/video.py", "open_video"): "open",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import cv2

    from workers.ingest import extract_face_crops
    from workers.ingest_params import IngestParams
    from workers.lifecycle import configure_threads, warm_up_detector

    configure_threads(1)
    warm_up_detector()
    params = IngestParams.from_settings(frames=32, align=True, largest_face=True, size=256)
    videos = sorted(args.dataset.rglob("*.mp4"))[: args.videos]
    profile = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    crops = 0
    for path in videos:
        profile.enable()
        result = extract_face_crops(path, params)
        for crop in result.crops:
            cv2.imencode(".png", crop.image_bgr)
        profile.disable()
        crops += len(result.crops)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    stats = pstats.Stats(profile)
    stages, png = {}, 0.0
    for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        for (suffix, name), stage in STAGES.items():
            if filename.endswith(suffix) and func == name:
                stages[stage] = stages.get(stage, 0.0) + ct
        if func == "imencode" or "imencode" in func:
            png += ct
    report = {"videos": len(videos), "crops": crops, "cpu_s_per_video": round(cpu / len(videos), 3),
              "wall_s_per_video": round(wall / len(videos), 3),
              "profiled_s_per_video": {k: round(v / len(videos), 3) for k, v in stages.items()}
              | {"png encode": round(png / len(videos), 3)},
              "note": "profiled times are wall seconds under cProfile (inflated by its overhead), per video"}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
