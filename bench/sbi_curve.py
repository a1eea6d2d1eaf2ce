"""The self-blended learning curve: held-out video AUC every few epochs of a `--fakes sbi` model.

    python -m orchestrator.cli sample-data sample --reals 32 --fakes 64 --seconds 4   # the demo's
    DATA_DIR=/tmp/d python -m orchestrator.cli ingest sample --every 0.25
    DATA_DIR=/tmp/d python -m orchestrator.cli train --fakes sbi --backbone tiny --weights none \\
        --image-size 64 --epochs 1                                             # makes a split
    DATA_DIR=/tmp/d python bench/sbi_curve.py --run RUN_ID --epochs 30 --every 3 --lr 3e-4

It reuses a run's split (train and test parts; the run's own model is not used), builds the model as
`train` does (`build_model`, weights none) and trains it on `training_dataset` (each real training
crop and a fresh pseudo-fake of it every epoch) with `model.fit`, without validation or early
stopping, scoring the test part every ``--every`` epochs: crop AUC and video AUC (the mean of a
video's crop probabilities), and the crop AUC of the test part's real crops against one pseudo-fake
of each (fixed seeds): whether what the model learnt carries over to faces it never saw. Used for
the table in docs/detectors.md ("The learning guard and the recipes"). At the end: each test video's
score, lowest first.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a run id under DATA_DIR/runs whose split is reused")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--every", type=int, default=3, help="epochs between scorings of the test part")
    parser.add_argument("--no-augment", action="store_true", help="without the model's augmentation layer")
    parser.add_argument("--keep-every", type=int, default=1, help="keep every k-th training crop")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import keras
    from sklearn.metrics import roc_auc_score

    from workers.training import sbi
    from workers.training.models import build_model
    from workers.training.run import load_split

    start = time.time()
    split = load_split(args.run)
    with open(os.path.join(os.environ["DATA_DIR"], "runs", args.run, "config.json")) as f:
        ingest = json.load(f).get("ingest")
    landmarks = sbi.split_landmarks(args.run, "train", {"image_size": args.size, "ingest": ingest})
    paths, labels = np.array(split["train"]["paths"]), np.array(split["train"]["labels"])
    keep = np.arange(len(paths)) % args.keep_every == 0
    images = sbi.load_images(list(paths[keep]), args.size)
    test = split["test"]
    test_images = sbi.load_images(test["paths"], args.size)
    test_labels, test_videos = np.array(test["labels"]), np.array(test["video_ids"])
    test_landmarks = sbi.split_landmarks(args.run, "test", {"image_size": args.size, "ingest": ingest})
    test_reals = np.flatnonzero(test_labels == 0)
    test_pseudo_fakes, made_from = sbi.validation_pseudo_fakes(test_images[test_reals], test_landmarks[test_reals],
                                                               args.seed)
    made_from = test_reals[made_from]
    keras.utils.set_random_seed(args.seed)
    data = sbi.training_dataset(images, labels[keep], landmarks[keep], batch_size=args.batch, seed=args.seed)
    model = build_model(args.backbone, weights="none", image_size=args.size, learning_rate=args.lr,
                        seed=args.seed, augment=not args.no_augment)
    print(f"{len(images)} training crops, {len(test_images)} test crops; set up in {time.time() - start:.0f} s")

    def score():
        probabilities = model.predict(test_images, batch_size=64, verbose=0).ravel()
        videos = np.unique(test_videos)
        video_scores = [probabilities[test_videos == v].mean() for v in videos]
        video_labels = [test_labels[test_videos == v][0] for v in videos]
        pseudo = model.predict(test_pseudo_fakes, batch_size=64, verbose=0).ravel()
        pseudo_auc = roc_auc_score(np.r_[np.zeros(len(made_from)), np.ones(len(pseudo))],
                                   np.r_[probabilities[made_from], pseudo])
        return (probabilities, roc_auc_score(test_labels, probabilities), roc_auc_score(video_labels, video_scores),
                pseudo_auc)

    started, done = time.time(), 0
    while done < args.epochs:
        step = min(args.every, args.epochs - done)
        history = model.fit(data.dataset, epochs=done + step, initial_epoch=done, verbose=0).history
        done += step
        _, crop_auc, video_auc, pseudo_auc = score()
        print(f"epoch {done}: training accuracy {history['accuracy'][-1]:.3f}, test crop AUC {crop_auc:.3f}, "
              f"video AUC {video_auc:.3f} ({len(np.unique(test_videos))} videos), test reals against their "
              f"pseudo-fakes {pseudo_auc:.3f}, {time.time() - started:.0f} s", flush=True)
    probabilities, _, _, _ = score()
    for video in sorted(np.unique(test_videos), key=lambda v: probabilities[test_videos == v].mean()):
        print(f"video {video}: label {test_labels[test_videos == video][0]}, "
              f"score {probabilities[test_videos == video].mean():.3f}")


if __name__ == "__main__":
    main()
