"""DFDC: folders holding a ``metadata.json`` (the train parts) or a ``labels.csv`` (the public test set)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from shared.errors import InputError
from shared.labels import FAKE, REAL, VIDEO_SUFFIX
from workers.datasets.base import (DatasetScan, DatasetVideo, Format, Groups, Identity, check_root, parent_folder,
                                   read_json, rel_to, videos_in)

METADATA = "metadata.json"
LABELS = "labels.csv"


def listings(root: Path, name: str) -> list[Path]:
    """``name`` in the root or in its subfolders (one or two levels down), hidden folders skipped."""
    found = [root / name] if (root / name).is_file() else []
    for pattern in (f"*/{name}", f"*/*/{name}"):
        found += [p for p in root.glob(pattern)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(set(found))


@dataclass
class _Listed:
    """What the listings of one DFDC folder tree say, read one listing at a time."""

    root: Path
    groups: Groups = field(default_factory=Groups)
    warnings: list[str] = field(default_factory=list)
    # (rel path, label, identity with its group key unset, split, union-find node) per video on disk
    entries: list[tuple[str, int, Identity, str | None, str]] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)  # every path a listing names, on disk or not
    originals_named: dict[str, str] = field(default_factory=dict)  # original file name -> first fake naming it

    def read_metadata(self, path: Path) -> None:
        """A ``metadata.json``: ``{"x.mp4": {"label": "FAKE"|"REAL", "original": "y.mp4", "split": ...}}``."""
        where = rel_to(self.root, path)
        metadata = read_json(path, where, dict, "an object mapping video names to their labels")
        missing: list[str] = []
        for name, info in metadata.items():
            label = info.get("label") if isinstance(info, dict) else None
            if not (isinstance(name, str) and name.lower().endswith(VIDEO_SUFFIX) and "/" not in name) \
                    or label not in ("FAKE", "REAL"):
                self.warnings.append(f"{where}: entry {name!r}: expected a .mp4 name with label FAKE or REAL, "
                                     f"got {info!r}"[:300])
                continue
            video = path.parent / name
            rel = rel_to(self.root, video)
            self.listed.add(rel)
            if not video.is_file():
                missing.append(name)
                continue
            original = info.get("original") if label == "FAKE" else None
            if label == "FAKE" and not (isinstance(original, str) and original.lower().endswith(VIDEO_SUFFIX)):
                self.warnings.append(f"{where}: fake {name} names no original video; it is a group of its own")
                original = None
            # A fake takes its original's node: the group is named after the real video.
            node = f"dfdc:{original}" if original else f"dfdc:{name}"
            self.groups.union(node)
            if original:
                self.originals_named.setdefault(original, rel)
            source_video = rel_to(self.root, path.parent / original) if original else None
            identity = Identity(Path(original).stem if original else Path(name).stem, None, source_video, "")
            split = info.get("split") if isinstance(info.get("split"), str) else None
            self.entries.append((rel, FAKE if label == "FAKE" else REAL, identity, split, node))
        _warn_missing(self.warnings, where, missing)

    def read_labels(self, path: Path) -> None:
        """A ``labels.csv`` of the public test set: every video it names is official test."""
        where = rel_to(self.root, path)
        missing = []
        for number, name, label in _read_label_csv(path, self.warnings, where):
            video = path.parent / name
            rel = rel_to(self.root, video)
            self.listed.add(rel)
            if not video.is_file():
                missing.append(f"{name} (line {number})")
                continue
            node = f"dfdc:{name}"
            self.groups.find(node)
            self.entries.append((rel, label, Identity(Path(name).stem, None, None, ""), "test", node))
        _warn_missing(self.warnings, where, missing)


def read_dfdc(root: Path | str) -> DatasetScan:
    """DFDC: every folder (the root, or a subfolder such as ``dfdc_train_part_0/``) holding a
    ``metadata.json`` (``{"x.mp4": {"label": "FAKE"|"REAL", "original": "y.mp4", ...}}``) or a
    ``labels.csv`` (``filename,label``, 1 = fake; the public test set, marked official test).

    A fake is grouped with its original (and so with every other fake of that original). Videos
    on disk that no listing names are ignored (one warning).
    """
    root = check_root(root)
    metadata_files = listings(root, METADATA)
    label_files = listings(root, LABELS)
    if not metadata_files and not label_files:
        raise InputError(f"{root}: not a DFDC layout: no {METADATA} or {LABELS} in the folder "
                         "or its subfolders")
    found = _Listed(root)
    for path in metadata_files:
        found.read_metadata(path)
    for path in label_files:
        found.read_labels(path)
    warnings = found.warnings

    seen: set[str] = set()
    videos = []
    for rel, label, identity, split, node in found.entries:
        if rel in seen:
            warnings.append(f"{rel} is listed twice; the first listing is kept")
            continue
        seen.add(rel)
        videos.append(DatasetVideo(rel, parent_folder(rel), label,
                                   replace(identity, group_key=found.groups.find(node)), split == "test", None, split))

    on_disk = {rel_to(root, p) for f in {p.parent for p in metadata_files + label_files} for p in videos_in(f)}
    unlisted = sorted(on_disk - found.listed)
    if unlisted:
        warnings.append(f"{len(unlisted)} videos are in no {METADATA} or {LABELS} and are ignored "
                        f"(first: {unlisted[0]})")
    present_names = {PurePosixPath(v.rel_path).name for v in videos}
    missing_originals = sorted(set(found.originals_named) - present_names)
    if missing_originals:
        warnings.append(f"{len(missing_originals)} originals named by fakes are not on disk "
                        f"(first: {missing_originals[0]}); their fakes are still grouped by them")
    return DatasetScan(root=root, videos=videos, warnings=warnings, test_list_found=bool(label_files), format="dfdc")


def _warn_missing(warnings: list[str], where: str, missing: list[str], detail: int = 5) -> None:
    """One warning per listed-but-missing video, or one for them all when there are many."""
    if len(missing) <= detail:
        warnings.extend(f"{where}: {name} is listed but not on disk" for name in missing)
    else:
        warnings.append(f"{where}: {len(missing)} listed videos are not on disk (first: {missing[0]})")


def _read_label_csv(path: Path, warnings: list[str], where: str):
    """(line number, file name, our label) for each good line of a DFDC ``labels.csv`` (1 = fake)."""
    text = path.read_text(errors="replace")
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if number == 1 and cells[0].lower() == "filename":
            continue
        if len(cells) < 2 or not cells[0].lower().endswith(VIDEO_SUFFIX) or "/" in cells[0] \
                or cells[1] not in ("0", "1", "0.0", "1.0"):
            warnings.append(f"{where}:{number}: cannot parse {','.join(row)!r}; expected filename,label (1 = fake)")
            continue
        yield number, cells[0], FAKE if float(cells[1]) == 1 else REAL


FORMAT = Format(
    name="dfdc",
    layout=f"DFDC ({METADATA} or {LABELS} in the folder or a subfolder)",
    matches=lambda root: bool(listings(root, METADATA) or listings(root, LABELS)),
    read=read_dfdc,
)
