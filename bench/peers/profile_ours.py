"""Where our task code spends a video at the field's protocol (32 frames, aligned, largest face, 256 px).

    python bench/peers/profile_ours.py DATASET [--videos 8] [--out FILE]

In one process with one thread, as a worker child runs it (detector built and traced first, not
counted): CPU seconds per video of `extract_face_crops` and of the PNG encoding the task does when it
writes the crops, split by stage. CPU time (time.process_time, every thread of the process), not wall
time, so that other processes on a shared machine do not inflate it: the stages are timed by wrapping
the functions `workers.ingest` calls; decoding is the rest of extract_face_crops.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import cv2

    import workers.ingest as ingest
    from workers.ingest_params import IngestParams
    from workers.lifecycle import configure_threads, warm_up_detector

    configure_threads(1)
    warm_up_detector()
    spent = {"detect": 0.0, "align": 0.0, "open + keyframe index": 0.0}

    def timed(stage, fn):
        def wrapper(*a, **k):
            t0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[stage] += time.process_time() - t0
        return wrapper

    ingest.detect_faces = timed("detect", ingest.detect_faces)
    ingest.align_face = timed("align", ingest.align_face)
    ingest.open_video = timed("open + keyframe index", ingest.open_video)
    ingest.index_stream = timed("open + keyframe index", ingest.index_stream)
    params = IngestParams.from_settings(frames=32, align=True, largest_face=True, size=256)
    videos = sorted(args.dataset.rglob("*.mp4"))[: args.videos]
    extract = png = 0.0
    crops = 0
    wall0 = time.perf_counter()
    for path in videos:
        t0 = time.process_time()
        result = ingest.extract_face_crops(path, params)
        t1 = time.process_time()
        for crop in result.crops:
            cv2.imencode(".png", crop.image_bgr)
        png += time.process_time() - t1
        extract += t1 - t0
        crops += len(result.crops)
    n = len(videos)
    stages = dict(spent)
    stages["decode (the rest of extract_face_crops)"] = extract - sum(spent.values())
    stages["png encode"] = png
    report = {"videos": n, "crops": crops, "cpu_s_per_video": round((extract + png) / n, 3),
              "wall_s_per_video": round((time.perf_counter() - wall0) / n, 3),
              "cpu_s_per_video_by_stage": {k: round(v / n, 3) for k, v in stages.items()},
              "load_avg": os.getloadavg()}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
