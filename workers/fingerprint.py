"""Which file a video's crops were made from: its size, modification time and a hash of its first and
last MiB. A later ingest that finds other values under the same name does the video again."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Enough to tell two encodings apart (headers, first frames, the index an mp4 keeps at its end)
# while reading 2 MiB of a video, whatever its length.
EDGE_BYTES = 1 << 20


def fingerprint(path: Path | str, size: int | None = None) -> str:
    """SHA-256 of the size, the first and the last ``EDGE_BYTES`` of the file (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size if size is None else size
        digest.update(str(size).encode() + b"\0")
        digest.update(handle.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            handle.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            digest.update(handle.read(EDGE_BYTES))
    return digest.hexdigest()


def file_stamp(path: Path | str) -> dict | None:
    """{"size_bytes", "mtime_ns", "fingerprint"} of a video file (the Video columns); None when it
    cannot be read."""
    try:
        stat = os.stat(path)
        return {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "fingerprint": fingerprint(path, stat.st_size)}
    except OSError:
        return None


def stamp_differs(recorded: dict, path: Path | str) -> bool | None:
    """Whether the file now at ``path`` is another one than ``recorded`` (a file_stamp, or a row with
    those fields). Size and time alike: the same (nothing read). Same size, other time: the hashes
    decide (a copy or a `touch` of the same bytes is the same video). None: the file cannot be read
    now, or nothing was recorded."""
    if recorded.get("size_bytes") is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if stat.st_size != recorded["size_bytes"]:
        return True
    if stat.st_mtime_ns == recorded.get("mtime_ns"):
        return False
    if not recorded.get("fingerprint"):
        return True
    try:
        return fingerprint(path, stat.st_size) != recorded["fingerprint"]
    except OSError:
        return None
