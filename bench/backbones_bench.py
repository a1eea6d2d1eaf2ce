"""Train-step time and peak memory per backbone and input side on this machine, with random weights.

    python bench/backbones_bench.py [--batch 8] [--steps 3] resnet50:128 xception:299 efficientnetb4:380 ...

Each backbone runs in its own process (peak RSS is per process): build the model as `train` does
(augmentation and preprocessing inside, --tune the entry's default), one warm-up step, then
``--steps`` timed steps on random uint8 crops. Prints one JSON line per backbone: parameters,
trainable parameters, seconds per step, images/s, peak RSS in MiB; and the expected GPU time per
epoch by arithmetic (docs/benchmarks.md, "Backbones"): forward GFLOPs at the native side (published)
scaled by (side / native)^2, x3 for a training step, at an assumed sustained rate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# Forward GFLOPs (multiply-adds x 2) per image at the native side, from the papers / keras docs.
FORWARD_GFLOPS = {  # name: (native side, GFLOPs)
    "resnet50": (224, 8.2), "efficientnetb0": (224, 0.78), "mobilenetv2": (224, 0.6),
    "xception": (299, 16.8), "efficientnetb4": (380, 3.6),
    "clip-vit-b16": (224, 35.2), "clip-vit-l14": (224, 162.0),
}
# Sustained training throughput assumed for an H100 (bf16/fp16 mixed precision): ~25% of the
# 990 dense TFLOP/s peak, what convolutional nets commonly reach; ViTs reach more, CNNs with
# depthwise convolutions (EfficientNet, MobileNet) much less.
H100_SUSTAINED_TFLOPS = 250.0


def one(spec: str, batch: int, steps: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    from workers.training.models import build_model, trainable_parameters

    name, size = spec.split(":")
    size = int(size)
    model = build_model(name, weights="none", image_size=size)
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    labels = np.arange(batch, dtype=np.float32) % 2
    model.train_on_batch(images, labels)  # warm-up: tracing
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    per_step = (time.perf_counter() - start) / steps
    native, gflops = FORWARD_GFLOPS.get(name, (size, None))  # tiny: no published figure
    train_gflops = 3 * gflops * (size / native) ** 2 if gflops else None
    return {"backbone": name, "size": size, "batch": batch, "parameters": int(model.count_params()),
            "trainable": trainable_parameters(model), "s_per_step": round(per_step, 3),
            "cpu_images_per_s": round(batch / per_step, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "train_gflops_per_image": round(train_gflops, 1) if train_gflops else None,
            "h100_images_per_s_expected": round(H100_SUSTAINED_TFLOPS * 1e3 / train_gflops) if train_gflops else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="+", help="backbone:side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.specs[0], args.batch, args.steps)))
        return
    for spec in args.specs:
        out = subprocess.run([sys.executable, __file__, "--child", "--batch", str(args.batch),
                              "--steps", str(args.steps), spec], capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1] if out.returncode == 0 else
              json.dumps({"spec": spec, "error": out.stderr.strip().splitlines()[-1:]}), flush=True)


if __name__ == "__main__":
    main()
