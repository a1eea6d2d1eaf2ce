"""A run's crops from an object store (STORAGE_URL=s3://...) into the local CACHE_DIR, so that
training reads local disk as it does with DATA_DIR. Folder by folder: one listing each, then the
crops and the folder's pack fetched in parallel, sizes checked, files already cached reused."""

from __future__ import annotations

import logging
import time
from typing import Callable

from shared.storage import Store, fetch_to_cache
from workers.crop_pack import PACK_NAME

log = logging.getLogger(__name__)


def fetch_crops(store: Store, keys: list[str], cache_dir, *, workers: int = 16,
                progress: Callable[[dict], None] | None = None) -> dict:
    """Fetch ``keys`` (crop keys) and their folders' packs; returns what it cost."""
    started = time.perf_counter()
    listing: dict[str, tuple[int, int | None]] = {}
    folders = sorted({key.rsplit("/", 1)[0] for key in keys})
    for folder in folders:
        listing.update(store.listing(folder))
    # What workers/training/data.py reads: every crop's PNG (it checks them all) and the folder's
    # pack, whose copy keeps the object's time (the pack is put after its PNGs: no older than them).
    wanted = list(dict.fromkeys(keys))
    wanted += [f"{folder}/{PACK_NAME}" for folder in folders if f"{folder}/{PACK_NAME}" in listing]

    def report(done: int, total: int, fetched: int) -> None:
        if progress:
            progress({"phase": "fetch", "files": done, "total": total, "bytes": fetched})

    fetch_to_cache(store, wanted, cache_dir, workers=workers, progress=report, listing=listing)
    seconds = time.perf_counter() - started
    total_bytes = sum(listing[key][0] for key in wanted)
    log.info("fetched %d files (%.1f MB) from %s in %.1f s", len(wanted), total_bytes / 1e6, store.url, seconds)
    return {"files": len(wanted), "bytes": total_bytes, "seconds": round(seconds, 3)}
