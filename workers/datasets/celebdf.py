"""Celeb-DF: Celeb-real/, YouTube-real/, Celeb-synthesis/ and List_of_testing_videos.txt."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from shared.errors import InputError
from shared.labels import FOLDER_LABELS, TEST_LIST_LABELS, TEST_LIST_NAME, VIDEO_SUFFIX
from workers.datasets.base import DatasetScan, DatasetVideo, Format, Identity, check_root, videos_in

_REAL_NAME = re.compile(r"^(id\d+)_(\d+)$")
_FAKE_NAME = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")


def parse_identity(folder: str, stem: str) -> Identity:
    """Identities from Celeb-DF file names.

    ``Celeb-real/id0_0003`` shows id0; ``Celeb-synthesis/id0_id16_0003`` is id16's face put
    into ``Celeb-real/id0_0003``; ``YouTube-real/00012`` has no known identity. A fake is
    grouped with its source identity, so it can never be split from the video it was made from.
    """
    if folder == "Celeb-synthesis":
        match = _FAKE_NAME.match(stem)
        if match:
            source, target, number = match.groups()
            return Identity(source, target, f"Celeb-real/{source}_{number}{VIDEO_SUFFIX}", f"celeb:{source}")
    elif folder == "Celeb-real":
        match = _REAL_NAME.match(stem)
        if match:
            return Identity(match.group(1), None, None, f"celeb:{match.group(1)}")
    # YouTube-real, or a name outside the convention: a group of its own.
    return Identity(None, None, None, f"{folder}:{stem}")


def parse_test_list(text: str, known: dict[str, int]) -> tuple[set[str], list[str]]:
    """Videos named by List_of_testing_videos.txt (first column: 1 = real, 0 = fake).

    ``known`` maps the dataset's video paths to our labels. A line naming a missing file or
    disagreeing with its folder's label is reported as a warning and ignored.
    """
    marked: set[str] = set()
    warnings: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in TEST_LIST_LABELS:
            warnings.append(f"{TEST_LIST_NAME}:{number}: cannot parse {line!r}")
            continue
        label = TEST_LIST_LABELS[parts[0]]
        rel = str(PurePosixPath(parts[1].strip().replace("\\", "/")))
        if rel not in known:
            warnings.append(f"{TEST_LIST_NAME}:{number}: {rel} is not in the dataset")
            continue
        if known[rel] != label:
            warnings.append(
                f"{TEST_LIST_NAME}:{number}: {rel} is listed as {'real' if label == 0 else 'fake'} "
                f"but its folder says {'real' if known[rel] == 0 else 'fake'}; the folder wins"
            )
        marked.add(rel)
    return marked, warnings


def read_celebdf(root: Path | str) -> DatasetScan:
    """Every ``.mp4`` under the Celeb-DF folders (other files are ignored); the official test set
    from List_of_testing_videos.txt when it is there."""
    root = check_root(root)
    present = [name for name in FOLDER_LABELS if (root / name).is_dir()]
    if not present:
        expected = ", ".join(f"{name}/" for name in FOLDER_LABELS)
        raise InputError(f"{root}: not a Celeb-DF layout: expected at least one of {expected}")

    labels = {f"{folder}/{path.name}": FOLDER_LABELS[folder]
              for folder in present for path in videos_in(root / folder)}
    warnings: list[str] = []
    marked: set[str] = set()
    test_list = root / TEST_LIST_NAME
    test_list_found = test_list.is_file()
    if test_list_found:
        marked, warnings = parse_test_list(test_list.read_text(errors="replace"), labels)
    videos = []
    for rel, label in labels.items():
        folder, name = rel.split("/", 1)
        videos.append(DatasetVideo(rel, folder, label, parse_identity(folder, Path(name).stem), rel in marked,
                                   None, "test" if rel in marked else None))

    missing_sources = sorted({v.identity.source_video for v in videos if v.identity.source_video} - set(labels))
    if missing_sources and "Celeb-real" in present:
        warnings.append(
            f"{len(missing_sources)} fakes name a source video that is not on disk "
            f"(first: {missing_sources[0]}); they are still grouped by source identity"
        )
    return DatasetScan(root=root, videos=videos, warnings=warnings, test_list_found=test_list_found,
                       format="celebdf")


FORMAT = Format(
    name="celebdf",
    layout="Celeb-DF (" + ", ".join(f"{name}/" for name in FOLDER_LABELS) + ")",
    matches=lambda root: any((root / name).is_dir() for name in FOLDER_LABELS),
    read=read_celebdf,
)
