"""Reading datasets' layouts: which videos exist, their labels, groups and official test marks.

One module per format, each ending in a ``FORMAT`` (``base.Format``: its name, how ``--format
auto`` recognises it, its reader), every reader returning a ``base.DatasetScan``. A new format is
one module and one entry in ``READERS``.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import InputError
from workers.datasets import celebdf, dfdc, ffpp, folders
from workers.datasets.base import DatasetScan, DatasetVideo, Format, Identity, check_links, check_root

# The order is the order in which `--format auto` names the layouts it looked for.
READERS: dict[str, Format] = {f.name: f for f in (celebdf.FORMAT, ffpp.FORMAT, dfdc.FORMAT, folders.FORMAT)}
FORMATS = tuple(READERS)

__all__ = ["DatasetScan", "DatasetVideo", "FORMATS", "Format", "Identity", "READERS", "detect_format",
           "read_dataset"]


def detect_format(root: Path | str) -> str:
    """The layout of the dataset in ``root``: one of FORMATS. InputError when none or several match."""
    root = check_root(root)
    found = [f.name for f in READERS.values() if f.matches(root)]
    if not found:
        raise InputError(f"{root}: not a known dataset layout; looked for "
                         + "; ".join(f.layout for f in READERS.values()))
    if len(found) > 1:
        raise InputError(f"{root}: looks like several layouts ({', '.join(found)}); name the format")
    return found[0]


def read_dataset(root: Path | str, format: str = "auto", *, follow_outside_links: bool = False,
                 **options) -> DatasetScan:
    """Read the dataset in ``root`` as ``format`` ("auto": ``detect_format``). ``options`` (such as
    FF++'s ``compression`` and ``splits_dir``) go to the readers that take them; others ignore them.
    Links to videos outside ``root`` are left out unless ``follow_outside_links`` (``check_links``)."""
    if format == "auto":
        format = detect_format(root)
    reader = READERS.get(format)
    if reader is None:
        raise InputError(f"unknown dataset format {format!r}; choose one of auto, {', '.join(FORMATS)}")
    scan = reader.read(root, **{name: options[name] for name in reader.options if name in options})
    return check_links(scan, follow_outside_links)
