"""What every dataset reader shares: the entries it returns, the one root check, the format record.

A reader is pure (no database, no decoding): it lists a dataset's videos with their labels,
identities, groups and official test marks. Problems in a listing (a bad line, a listed file that
is missing) are warnings; a listing that cannot be read at all (invalid JSON) is an ``InputError``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from shared.errors import InputError
from shared.labels import VIDEO_SUFFIX


@dataclass(frozen=True)
class Identity:
    source: str | None  # "id0": the person in the source footage
    target: str | None  # "id3": the face swapped in (fakes only)
    source_video: str | None  # the real video a fake was made from
    group_key: str  # videos sharing a key must stay on one side of a split


@dataclass(frozen=True)
class DatasetVideo:
    rel_path: str
    folder: str
    label: int
    identity: Identity
    official_test: bool = False
    method: str | None = None  # FF++ manipulation method of a fake ("Deepfakes", ...); None otherwise
    # The dataset's own split when it publishes one: "train" / "val" / "test" (FF++'s json files,
    # DFDC's metadata "split", "test" for DFDC's labels.csv and Celeb-DF's test list); None otherwise.
    official_split: str | None = None


@dataclass
class DatasetScan:
    root: Path
    videos: list[DatasetVideo]
    warnings: list[str] = field(default_factory=list)
    # An official test list or split was found (Celeb-DF's list, FF++'s test.json, DFDC's labels.csv).
    test_list_found: bool = False
    format: str = "celebdf"


@dataclass(frozen=True)
class Format:
    """One dataset layout: how `--format auto` recognises it and how it is read.

    ``read(root, **options)`` takes the options named in ``options`` (e.g. FF++'s compression),
    each with a default; ``read_dataset`` passes a reader only those."""

    name: str
    layout: str  # what `--format auto` looks for, shown when no layout matches
    matches: Callable[[Path], bool]  # called with a checked root
    read: Callable[..., DatasetScan]
    options: tuple[str, ...] = ()


def check_root(root: Path | str) -> Path:
    """The dataset folder, resolved; InputError when it is missing or not a directory."""
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{root}: no such directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    return root.resolve()


class Groups:
    """Union-find over string nodes; a component's key is its smallest node (so keys do not depend
    on the order in which files were read)."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, *nodes: str) -> None:
        roots = sorted({self.find(node) for node in nodes})
        for other in roots[1:]:
            self.parent[other] = roots[0]  # the smallest node stays the root


def videos_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The .mp4 files of a folder (hidden files left out), sorted."""
    if not folder.is_dir():
        return []
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in paths if p.suffix.lower() == VIDEO_SUFFIX and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def check_links(scan: DatasetScan, follow_outside: bool = False) -> DatasetScan:
    """Symbolic links, said out loud. A video whose real file lies outside the dataset root (a link
    to a file or to a folder elsewhere) is left out unless ``follow_outside``; either way a warning
    gives the count. Links that loop (or point to nothing) cannot be read: a warning counts them."""
    root = scan.root.resolve()
    outside = [v for v in scan.videos if not (root / v.rel_path).resolve().is_relative_to(root)]
    if outside:
        names = ", ".join(v.rel_path for v in outside[:3]) + (" …" if len(outside) > 3 else "")
        if follow_outside:
            scan.warnings.append(f"{len(outside)} videos are links to files outside {root}, followed "
                                 f"(--follow-outside-links): {names}")
        else:
            scan.warnings.append(f"{len(outside)} videos are links to files outside {root}, left out "
                                 f"(--follow-outside-links reads them): {names}")
            left_out = {v.rel_path for v in outside}
            scan.videos = [v for v in scan.videos if v.rel_path not in left_out]
    broken = []
    for folder, dirs, files in os.walk(root):  # links to folders are not followed: no walk can loop
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                try:
                    path.resolve(strict=True)
                except (OSError, RuntimeError):  # a loop (RuntimeError before Python 3.13) or a dangling link
                    broken.append(path.relative_to(root).as_posix())
    if broken:
        names = ", ".join(sorted(broken)[:3]) + (" …" if len(broken) > 3 else "")
        scan.warnings.append(f"{len(broken)} symbolic links loop or point to nothing, skipped: {names}")
    return scan


def rel_to(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def parent_folder(rel: str) -> str:
    return str(PurePosixPath(rel).parent)


def read_json(path: Path, shown, kind: type, expected: str):
    """A metadata file's JSON, which must be a ``kind``; InputError naming ``shown`` otherwise."""
    try:
        value = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{shown}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(value, kind):
        raise InputError(f"{shown}: expected {expected}")
    return value
