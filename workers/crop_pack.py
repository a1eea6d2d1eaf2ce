"""A video's crops decoded once, in one file beside its PNGs: what training reads instead of decoding.

The ingest worker has every crop in memory as pixels when it writes the PNGs; writing the same
pixels raw costs it well under a millisecond per crop. Training then reads one file per video
(large sequential reads, no PNG decoding), so its first epoch runs as fast as the later ones and a
GPU host's CPU cores are not spent inflating PNGs (docs/benchmarks.md, "Scale of data").
The PNGs stay the record: people look at them, and a video without a valid pack is decoded from them.

Format (little-endian): ``MAGIC`` (8 bytes), the header's length (uint32), the header (UTF-8 JSON:
``{"names": [...], "height": H, "width": W}``, padded with spaces so the pixels start at a multiple
of 64 bytes), then the crops as uint8 RGB, ``len(names) x H x W x 3``, in the order of ``names``.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

PACK_NAME = "crops.pack"
MAGIC = b"DFCROPS1"
TMP_SUFFIX = ".tmp.pack"
_ALIGN = 64


@dataclass(frozen=True)
class PackHeader:
    path: Path
    names: tuple[str, ...]
    height: int
    width: int
    offset: int  # where the pixels start
    mtime_ns: int

    @property
    def crop_bytes(self) -> int:
        return self.height * self.width * 3

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


def write_pack_atomically(path: Path, names: Sequence[str], images_rgb: Sequence[np.ndarray]) -> None:
    """Write a pack through a temporary name in the same folder, then rename (as the PNGs)."""
    if len(names) != len(images_rgb) or not names:
        raise ValueError(f"a pack needs one name per crop and at least one crop ({len(names)} names, "
                         f"{len(images_rgb)} crops)")
    height, width = images_rgb[0].shape[:2]
    for image in images_rgb:
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ValueError(f"pack crops must all be uint8 ({height}, {width}, 3), got {image.dtype} {image.shape}")
    header = json.dumps({"names": list(names), "height": int(height), "width": int(width)}).encode()
    pad = -(len(MAGIC) + 4 + len(header)) % _ALIGN
    header += b" " * pad
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{socket.gethostname()}.{os.getpid()}{TMP_SUFFIX}")
    with open(tmp, "wb") as out:
        out.write(MAGIC + struct.pack("<I", len(header)) + header)
        for image in images_rgb:
            out.write(np.ascontiguousarray(image).data)
    os.replace(tmp, path)


def read_pack_header(path: Path) -> PackHeader | None:
    """The header of a complete pack; None when the file is missing, not a pack, or truncated."""
    try:
        with open(path, "rb") as pack:
            stat = os.fstat(pack.fileno())
            start = pack.read(len(MAGIC) + 4)
            if len(start) != len(MAGIC) + 4 or not start.startswith(MAGIC):
                return None
            (length,) = struct.unpack("<I", start[len(MAGIC):])
            if length > stat.st_size:
                return None
            meta = json.loads(pack.read(length))
        names, height, width = tuple(meta["names"]), int(meta["height"]), int(meta["width"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    offset = len(MAGIC) + 4 + length
    if height < 1 or width < 1 or stat.st_size != offset + len(names) * height * width * 3:
        return None
    return PackHeader(path=Path(path), names=names, height=height, width=width, offset=offset,
                      mtime_ns=stat.st_mtime_ns)


def read_pack(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and crops (N, H, W, 3) of a pack, in NumPy (tests, tools); training reads it in TensorFlow."""
    header = read_pack_header(path)
    if header is None:
        raise ValueError(f"{path} is not a complete crop pack")
    pixels = np.fromfile(path, dtype=np.uint8, offset=header.offset)
    return header.names, pixels.reshape(len(header.names), header.height, header.width, 3)
