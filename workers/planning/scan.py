"""Reading a Celeb-DF folder: which videos exist, their labels, identities and test-set marks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from shared.errors import InputError
from shared.labels import FOLDER_LABELS, TEST_LIST_LABELS, TEST_LIST_NAME, VIDEO_SUFFIX


@dataclass(frozen=True)
class Identity:
    source: str | None  # "id0": the person in the source footage
    target: str | None  # "id3": the face swapped in (fakes only)
    source_video: str | None  # the real video a fake was made from
    group_key: str  # videos sharing a key must stay on one side of a split


@dataclass(frozen=True)
class VideoEntry:
    rel_path: str
    folder: str
    label: int
    identity: Identity
    official_test: bool = False


@dataclass
class ScanResult:
    root: Path
    videos: list[VideoEntry]
    warnings: list[str] = field(default_factory=list)
    test_list_found: bool = False


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


def scan_dataset(root: Path | str) -> ScanResult:
    """Every ``.mp4`` under the Celeb-DF folders; other files are ignored."""
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{root}: no such directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    present = [name for name in FOLDER_LABELS if (root / name).is_dir()]
    if not present:
        expected = ", ".join(f"{name}/" for name in FOLDER_LABELS)
        raise InputError(f"{root}: not a Celeb-DF layout: expected at least one of {expected}")
    root = root.resolve()

    entries: list[VideoEntry] = []
    for folder in present:
        label = FOLDER_LABELS[folder]
        for path in sorted((root / folder).iterdir()):
            if path.suffix.lower() != VIDEO_SUFFIX or not path.is_file() or path.name.startswith("."):
                continue
            rel = f"{folder}/{path.name}"
            entries.append(VideoEntry(rel, folder, label, parse_identity(folder, path.stem)))

    result = ScanResult(root=root, videos=entries)
    test_list = root / TEST_LIST_NAME
    if test_list.is_file():
        result.test_list_found = True
        known = {e.rel_path: e.label for e in entries}
        marked, warnings = parse_test_list(test_list.read_text(errors="replace"), known)
        result.warnings.extend(warnings)
        result.videos = [
            VideoEntry(e.rel_path, e.folder, e.label, e.identity, e.rel_path in marked) for e in entries
        ]
    missing_sources = sorted(
        {e.identity.source_video for e in entries if e.identity.source_video}
        - {e.rel_path for e in entries}
    )
    if missing_sources and "Celeb-real" in present:
        result.warnings.append(
            f"{len(missing_sources)} fakes name a source video that is not on disk "
            f"(first: {missing_sources[0]}); they are still grouped by source identity"
        )
    return result
