"""Plain folders: ``real/**/*.mp4`` and ``fake/**/*.mp4``, an optional ``groups.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path, PurePosixPath

from shared.errors import InputError
from shared.labels import FAKE, REAL
from workers.datasets.base import (DatasetScan, DatasetVideo, Format, Identity, check_root, parent_folder, rel_to,
                                   videos_in)

GROUPS = "groups.csv"
LABELS = {"real": REAL, "fake": FAKE}


def read_folders(root: Path | str) -> DatasetScan:
    """``real/**/*.mp4`` (label 0) and ``fake/**/*.mp4`` (label 1), the top folder's name deciding
    (any case). Every video is its own group unless ``groups.csv`` (``video,group``, ``video`` the
    path from the root such as ``fake/a.mp4``) puts it in a named one. No official test set."""
    root = check_root(root)
    tops = sorted((child for child in root.iterdir() if child.is_dir() and child.name.lower() in LABELS),
                  key=lambda p: p.name)
    if not tops:
        raise InputError(f"{root}: not a folders layout: expected real/ and/or fake/")
    entries: dict[str, int] = {}
    for top in tops:
        for path in videos_in(top, recursive=True):
            entries[rel_to(root, path)] = LABELS[top.name.lower()]

    warnings: list[str] = []
    named: dict[str, str] = {}
    groups_file = root / GROUPS
    if groups_file.is_file():
        text = groups_file.read_text(errors="replace")
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cells = [cell.strip() for cell in row]
            if not cells or all(not c for c in cells):
                continue
            if number == 1 and [c.lower() for c in cells[:2]] == ["video", "group"]:
                continue
            if len(cells) != 2 or not cells[0] or not cells[1]:
                warnings.append(f"{GROUPS}:{number}: cannot parse {','.join(row)!r}; expected video,group")
                continue
            rel = str(PurePosixPath(cells[0].replace("\\", "/")))
            if rel not in entries:
                warnings.append(f"{GROUPS}:{number}: {rel} is not in the dataset")
                continue
            named[rel] = cells[1]
    videos = [
        DatasetVideo(rel, parent_folder(rel), label,
                     Identity(named.get(rel), None, None,
                              f"group:{named[rel]}" if rel in named else f"video:{rel}"))
        for rel, label in sorted(entries.items())
    ]
    return DatasetScan(root=root, videos=videos, warnings=warnings, test_list_found=False, format="folders")


FORMAT = Format(
    name="folders",
    layout="folders (real/, fake/)",
    matches=lambda root: any(child.is_dir() and child.name.lower() in LABELS for child in root.iterdir()),
    read=read_folders,
)
