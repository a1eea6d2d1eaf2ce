"""Reading other datasets' layouts: which videos exist, their labels, groups and official test marks.

Pure readers (no database, no decoding). Each returns a ``DatasetScan``: a ``ScanResult`` (as the
Celeb-DF reader of workers/planning/scan.py returns) whose videos are ``DatasetVideo`` entries, i.e.
``VideoEntry`` plus ``method`` (the manipulation method of a FaceForensics++ fake, None otherwise).

- ``ffpp``: FaceForensics++ as its download script leaves it (original_sequences/...,
  manipulated_sequences/<Method>/...), official split from train/val/test.json.
- ``dfdc``: folders holding a DFDC ``metadata.json`` (train parts) or a ``labels.csv`` (public test set).
- ``folders``: ``real/**/*.mp4`` and ``fake/**/*.mp4``, optional ``groups.csv``.
- ``celebdf``: workers/planning/scan.py's reader.

Videos sharing a ``group_key`` must stay on one side of a split: a fake is grouped with the real
videos it was made from, and every video connected to those (a union-find over the originals).
Problems in a listing (a bad line, a listed file that is missing) are warnings; a listing that
cannot be read at all (invalid JSON) is an ``InputError``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from shared.errors import InputError
from workers.planning.scan import Identity, ScanResult, VideoEntry, scan_dataset
from shared.labels import FAKE, FOLDER_LABELS, REAL, VIDEO_SUFFIX

FORMATS = ("celebdf", "ffpp", "dfdc", "folders")

FFPP_COMPRESSIONS = ("raw", "c23", "c40")
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
FFPP_SPLITS = ("train", "val", "test")
DFDC_METADATA = "metadata.json"
DFDC_LABELS = "labels.csv"
FOLDERS_GROUPS = "groups.csv"
FOLDERS_LABELS = {"real": REAL, "fake": FAKE}

_LAYOUTS = {
    "celebdf": "Celeb-DF (" + ", ".join(f"{name}/" for name in FOLDER_LABELS) + ")",
    "ffpp": "FaceForensics++ (original_sequences/, manipulated_sequences/)",
    "dfdc": f"DFDC ({DFDC_METADATA} or {DFDC_LABELS} in the folder or a subfolder)",
    "folders": "folders (real/, fake/)",
}


@dataclass(frozen=True)
class DatasetVideo(VideoEntry):
    method: str | None = None  # FF++ manipulation method of a fake ("Deepfakes", ...); None otherwise
    # The dataset's own split when it publishes one: "train" / "val" / "test" (FF++'s json files,
    # DFDC's metadata "split", "test" for DFDC's labels.csv and Celeb-DF's test list); None otherwise.
    official_split: str | None = None


@dataclass
class DatasetScan(ScanResult):
    format: str = "celebdf"

    @property
    def official_test_found(self) -> bool:
        """An official test list or split was found (Celeb-DF's list, FF++'s test.json, DFDC's labels.csv)."""
        return self.test_list_found


class _Groups:
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


def _check_root(root: Path | str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"{root}: no such directory")
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    return root.resolve()


def _videos_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The .mp4 files of a folder (hidden files left out), sorted."""
    if not folder.is_dir():
        return []
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in paths if p.suffix.lower() == VIDEO_SUFFIX and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _folder(rel: str) -> str:
    return str(PurePosixPath(rel).parent)


def _dfdc_files(root: Path, name: str) -> list[Path]:
    """``name`` in the root or in its subfolders (one or two levels down), hidden folders skipped."""
    found = [root / name] if (root / name).is_file() else []
    for pattern in (f"*/{name}", f"*/*/{name}"):
        found += [p for p in root.glob(pattern)
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(set(found))


def _matches(root: Path) -> list[str]:
    found = []
    if any((root / name).is_dir() for name in FOLDER_LABELS):
        found.append("celebdf")
    if (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir():
        found.append("ffpp")
    if _dfdc_files(root, DFDC_METADATA) or _dfdc_files(root, DFDC_LABELS):
        found.append("dfdc")
    if any(child.is_dir() and child.name.lower() in FOLDERS_LABELS for child in root.iterdir()):
        found.append("folders")
    return found


def detect_format(root: Path | str) -> str:
    """The layout of the dataset in ``root``: one of FORMATS. InputError when none or several match."""
    root = _check_root(root)
    found = _matches(root)
    if not found:
        raise InputError(f"{root}: not a known dataset layout; looked for " + "; ".join(_LAYOUTS.values()))
    if len(found) > 1:
        raise InputError(f"{root}: looks like several layouts ({', '.join(found)}); name the format")
    return found[0]


def read_dataset(root: Path | str, format: str = "auto", *, compression: str = "c23",
                 splits_dir: Path | str | None = None) -> DatasetScan:
    """Read the dataset in ``root`` as ``format`` ("auto": ``detect_format``). ``compression`` and
    ``splits_dir`` only matter to FF++."""
    if format == "auto":
        format = detect_format(root)
    if format == "celebdf":
        return read_celebdf(root)
    if format == "ffpp":
        return read_ffpp(root, compression=compression, splits_dir=splits_dir)
    if format == "dfdc":
        return read_dfdc(root)
    if format == "folders":
        return read_folders(root)
    raise InputError(f"unknown dataset format {format!r}; choose one of auto, {', '.join(FORMATS)}")


# --- Celeb-DF -------------------------------------------------------------------------------------

def read_celebdf(root: Path | str) -> DatasetScan:
    """workers/planning/scan.py's Celeb-DF reader, its entries as DatasetVideo (method None)."""
    scan = scan_dataset(root)
    videos = [DatasetVideo(v.rel_path, v.folder, v.label, v.identity, v.official_test, None,
                           "test" if v.official_test else None) for v in scan.videos]
    return DatasetScan(root=scan.root, videos=videos, warnings=list(scan.warnings),
                       test_list_found=scan.test_list_found, format="celebdf")


# --- FaceForensics++ ------------------------------------------------------------------------------

_FFPP_ORIGINAL = re.compile(r"^(\d{3})$")  # youtube/000.mp4
_FFPP_FAKE = re.compile(r"^(\d{3})_(\d{3})$")  # <Method>/TTT_SSS.mp4: TTT's footage, SSS's face
_DFD_ACTOR = re.compile(r"^(\d{2})__(.+)$")  # actors/01__exit_phone_room.mp4
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__(.+?)__([A-Za-z0-9]+)$")  # 01_02__meeting_serious__YVGY8LOK.mp4


def read_ffpp_splits(splits_dir: Path) -> tuple[dict[str, set[str]], list[str]]:
    """FF++'s ``train.json`` / ``val.json`` / ``test.json`` (lists of ``["TTT", "SSS"]`` pairs) as
    {split: set of video stems it covers}: both originals and both fakes TTT_SSS and SSS_TTT.
    Missing files are left out; a malformed pair is a warning; invalid JSON is an InputError."""
    covered: dict[str, set[str]] = {}
    warnings: list[str] = []
    for split in FFPP_SPLITS:
        path = splits_dir / f"{split}.json"
        if not path.is_file():
            continue
        pairs = _read_json(path, path, list, 'a list of ["TTT", "SSS"] pairs')
        stems: set[str] = set()
        for number, pair in enumerate(pairs, start=1):
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(v, str) and _FFPP_ORIGINAL.match(v) for v in pair)):
                warnings.append(f"{path.name}: entry {number}: not a pair of video numbers: {pair!r}")
                continue
            a, b = pair
            stems |= {a, b, f"{a}_{b}", f"{b}_{a}"}
        covered[split] = stems
    for first, second in (("train", "test"), ("val", "test"), ("train", "val")):
        both = {s for s in covered.get(first, set()) & covered.get(second, set()) if "_" not in s}
        if both:
            warnings.append(f"{len(both)} videos are in both {first}.json and {second}.json "
                            f"(first: {min(both)})")
    return covered, warnings


def read_ffpp(root: Path | str, *, compression: str = "c23", splits_dir: Path | str | None = None) -> DatasetScan:
    """FaceForensics++: originals, every manipulation method present, DeepFakeDetection and its actors.

    Groups: a fake TTT_SSS joins originals TTT and SSS (and with them every fake of either); a
    DeepFakeDetection fake AA_BB__scene__ID joins actors AA and BB. Official test marks come from
    ``test.json`` in ``splits_dir`` or ``root/splits/`` (FF++'s split covers the youtube originals
    and the fakes made from them; DeepFakeDetection and actors are never marked).
    """
    root = _check_root(root)
    if compression not in FFPP_COMPRESSIONS:
        raise InputError(f"unknown FF++ compression {compression!r}; choose one of {', '.join(FFPP_COMPRESSIONS)}")
    if not ((root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir()):
        raise InputError(f"{root}: not a FaceForensics++ layout: expected original_sequences/ "
                         "and/or manipulated_sequences/")

    sources: list[tuple[str, str, int, str | None]] = []  # (folder, kind, label, method)
    for kind in ("youtube", "actors"):
        sources.append((f"original_sequences/{kind}/{compression}/videos", kind, REAL, None))
    manipulated = root / "manipulated_sequences"
    methods = sorted(p.name for p in manipulated.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if manipulated.is_dir() else []
    for method in methods:
        sources.append((f"manipulated_sequences/{method}/{compression}/videos", "fake", FAKE, method))

    warnings: list[str] = []
    present = [(folder, kind, label, method) for folder, kind, label, method in sources if (root / folder).is_dir()]
    if not present:
        found = sorted({p.parent.name for p in root.glob("*_sequences/*/*/videos")})
        hint = f"; compressions present: {', '.join(found)}" if found else ""
        raise InputError(f"{root}: no FF++ video folder for compression {compression} "
                         f"(expected original_sequences/youtube/{compression}/videos/ or "
                         f"manipulated_sequences/<Method>/{compression}/videos/){hint}")
    unknown = [method for _, _, _, method in present if method is not None and method not in FFPP_METHODS]
    if unknown:
        warnings.append(f"manipulation folders not known to FF++ read as fakes too: {', '.join(unknown)}")

    groups = _Groups()
    raw: list[tuple[str, int, Identity, str | None, str]] = []  # rel, label, identity (key unset), method, node
    for folder, kind, label, method in present:
        for path in _videos_in(root / folder):
            rel, stem = _rel(root, path), path.stem
            identity, nodes = _ffpp_identity(kind, method, stem, compression)
            groups.union(*nodes)
            raw.append((rel, label, identity, method, nodes[0]))

    splits: dict[str, set[str]] = {}
    splits_path = Path(splits_dir).expanduser() if splits_dir is not None else root / "splits"
    if splits_dir is not None and not splits_path.is_dir():
        raise InputError(f"{splits_path}: no such splits directory")
    if splits_path.is_dir():
        splits, split_warnings = read_ffpp_splits(splits_path)
        warnings.extend(split_warnings)
    test_stems = splits.get("test", set())

    videos = []
    for rel, label, identity, method, node in raw:
        stem = PurePosixPath(rel).stem
        in_split = method != "DeepFakeDetection" and "/actors/" not in f"/{rel}"
        # A video named by several split files (a warning above) counts as test first, then val.
        split = next((name for name in ("test", "val", "train") if stem in splits.get(name, ())), None) \
            if in_split else None
        videos.append(DatasetVideo(rel, _folder(rel), label, replace(identity, group_key=groups.find(node)),
                                   split == "test", method, split))

    if "test" in splits:
        on_disk_originals = {PurePosixPath(v.rel_path).stem for v in videos if "/youtube/" in v.rel_path}
        missing = sorted(s for s in test_stems if "_" not in s and s not in on_disk_originals)
        if missing and on_disk_originals:
            warnings.append(f"test.json names {len(missing)} original videos that are not on disk "
                            f"(first: {missing[0]}.mp4)")
    fakes_without_original = sorted({v.identity.source_video for v in videos
                                     if v.identity.source_video and v.label == FAKE}
                                    - {v.rel_path for v in videos})
    if fakes_without_original and any(v.label == REAL for v in videos):
        warnings.append(f"{len(fakes_without_original)} fakes name an original that is not on disk "
                        f"(first: {fakes_without_original[0]}); they are still grouped with it")
    return DatasetScan(root=root, videos=videos, warnings=warnings, test_list_found="test" in splits, format="ffpp")


def _ffpp_identity(kind: str, method: str | None, stem: str, compression: str) -> tuple[Identity, list[str]]:
    """(identity with an empty group key, union-find nodes: the first one is the video's own)."""
    if kind == "youtube":
        if _FFPP_ORIGINAL.match(stem):
            return Identity(stem, None, None, ""), [f"ffpp:{stem}"]
    elif kind == "actors":
        match = _DFD_ACTOR.match(stem)
        if match:
            actor = f"actor{match.group(1)}"
            return Identity(actor, None, None, ""), [f"ffpp:{actor}"]
    elif method == "DeepFakeDetection":
        match = _DFD_FAKE.match(stem)
        if match:
            first, second, scene, _ = match.groups()
            source_video = f"original_sequences/actors/{compression}/videos/{first}__{scene}.mp4"
            return (Identity(f"actor{first}", f"actor{second}", source_video, ""),
                    [f"ffpp:actor{first}", f"ffpp:actor{second}"])
    else:
        match = _FFPP_FAKE.match(stem)
        if match:
            target, source = match.groups()  # TTT's footage with SSS's face
            source_video = f"original_sequences/youtube/{compression}/videos/{target}.mp4"
            return Identity(target, source, source_video, ""), [f"ffpp:{target}", f"ffpp:{source}"]
    # A name outside the conventions: a group of its own.
    return Identity(None, None, None, ""), [f"ffpp:{kind if method is None else method}/{stem}"]


# --- DFDC -----------------------------------------------------------------------------------------

def read_dfdc(root: Path | str) -> DatasetScan:
    """DFDC: every folder (the root, or a subfolder such as ``dfdc_train_part_0/``) holding a
    ``metadata.json`` (``{"x.mp4": {"label": "FAKE"|"REAL", "original": "y.mp4", ...}}``) or a
    ``labels.csv`` (``filename,label``, 1 = fake; the public test set, marked official test).

    A fake is grouped with its original (and so with every other fake of that original). Videos
    on disk that no listing names are ignored (one warning).
    """
    root = _check_root(root)
    metadata_files = _dfdc_files(root, DFDC_METADATA)
    label_files = _dfdc_files(root, DFDC_LABELS)
    if not metadata_files and not label_files:
        raise InputError(f"{root}: not a DFDC layout: no {DFDC_METADATA} or {DFDC_LABELS} in the folder "
                         "or its subfolders")
    groups = _Groups()
    warnings: list[str] = []
    raw: list[tuple[str, int, Identity, str | None, str]] = []  # rel, label, identity, split, node
    listed: set[str] = set()
    originals_named: dict[str, str] = {}  # original file name -> first fake naming it

    for path in metadata_files:
        where = _rel(root, path)
        metadata = _read_json(path, where, dict, "an object mapping video names to their labels")
        missing: list[str] = []
        for name, info in metadata.items():
            label = info.get("label") if isinstance(info, dict) else None
            if not (isinstance(name, str) and name.lower().endswith(VIDEO_SUFFIX) and "/" not in name) \
                    or label not in ("FAKE", "REAL"):
                warnings.append(f"{where}: entry {name!r}: expected a .mp4 name with label FAKE or REAL, "
                                f"got {info!r}"[:300])
                continue
            video = path.parent / name
            rel = _rel(root, video)
            listed.add(rel)
            if not video.is_file():
                missing.append(name)
                continue
            original = info.get("original") if label == "FAKE" else None
            if label == "FAKE" and not (isinstance(original, str) and original.lower().endswith(VIDEO_SUFFIX)):
                warnings.append(f"{where}: fake {name} names no original video; it is a group of its own")
                original = None
            # A fake takes its original's node: the group is named after the real video.
            nodes = [f"dfdc:{original}" if original else f"dfdc:{name}"]
            groups.union(*nodes)
            if original:
                originals_named.setdefault(original, rel)
            source_video = _rel(root, path.parent / original) if original else None
            identity = Identity(Path(original).stem if original else Path(name).stem, None, source_video, "")
            split = info.get("split") if isinstance(info.get("split"), str) else None
            raw.append((rel, FAKE if label == "FAKE" else REAL, identity, split, nodes[0]))
        _warn_missing(warnings, where, missing)

    for path in label_files:
        where = _rel(root, path)
        missing = []
        for number, name, label in _read_label_csv(path, warnings, where):
            video = path.parent / name
            rel = _rel(root, video)
            listed.add(rel)
            if not video.is_file():
                missing.append(f"{name} (line {number})")
                continue
            node = f"dfdc:{name}"
            groups.find(node)
            raw.append((rel, label, Identity(Path(name).stem, None, None, ""), "test", node))
        _warn_missing(warnings, where, missing)

    seen: set[str] = set()
    videos = []
    for rel, label, identity, split, node in raw:
        if rel in seen:
            warnings.append(f"{rel} is listed twice; the first listing is kept")
            continue
        seen.add(rel)
        videos.append(DatasetVideo(rel, _folder(rel), label, replace(identity, group_key=groups.find(node)),
                                   split == "test", None, split))

    on_disk = {_rel(root, p) for f in {p.parent for p in metadata_files + label_files} for p in _videos_in(f)}
    unlisted = sorted(on_disk - listed)
    if unlisted:
        warnings.append(f"{len(unlisted)} videos are in no {DFDC_METADATA} or {DFDC_LABELS} and are ignored "
                        f"(first: {unlisted[0]})")
    present_names = {PurePosixPath(v.rel_path).name for v in videos}
    missing_originals = sorted(set(originals_named) - present_names)
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


# --- real/ and fake/ folders ----------------------------------------------------------------------

def read_folders(root: Path | str) -> DatasetScan:
    """``real/**/*.mp4`` (label 0) and ``fake/**/*.mp4`` (label 1), the top folder's name deciding
    (any case). Every video is its own group unless ``groups.csv`` (``video,group``, ``video`` the
    path from the root such as ``fake/a.mp4``) puts it in a named one. No official test set."""
    root = _check_root(root)
    tops = sorted((child for child in root.iterdir() if child.is_dir() and child.name.lower() in FOLDERS_LABELS),
                  key=lambda p: p.name)
    if not tops:
        raise InputError(f"{root}: not a folders layout: expected real/ and/or fake/")
    entries: dict[str, int] = {}
    for top in tops:
        for path in _videos_in(top, recursive=True):
            entries[_rel(root, path)] = FOLDERS_LABELS[top.name.lower()]

    warnings: list[str] = []
    named: dict[str, str] = {}
    groups_file = root / FOLDERS_GROUPS
    if groups_file.is_file():
        text = groups_file.read_text(errors="replace")
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cells = [cell.strip() for cell in row]
            if not cells or all(not c for c in cells):
                continue
            if number == 1 and [c.lower() for c in cells[:2]] == ["video", "group"]:
                continue
            if len(cells) != 2 or not cells[0] or not cells[1]:
                warnings.append(f"{FOLDERS_GROUPS}:{number}: cannot parse {','.join(row)!r}; expected video,group")
                continue
            rel = str(PurePosixPath(cells[0].replace("\\", "/")))
            if rel not in entries:
                warnings.append(f"{FOLDERS_GROUPS}:{number}: {rel} is not in the dataset")
                continue
            named[rel] = cells[1]
    videos = [
        DatasetVideo(rel, _folder(rel), label,
                     Identity(named.get(rel), None, None,
                              f"group:{named[rel]}" if rel in named else f"video:{rel}"))
        for rel, label in sorted(entries.items())
    ]
    return DatasetScan(root=root, videos=videos, warnings=warnings, test_list_found=False, format="folders")


def _read_json(path: Path, shown, kind: type, expected: str):
    """A metadata file's JSON, which must be a ``kind``; InputError naming ``shown`` otherwise."""
    try:
        value = json.loads(path.read_text(errors="replace"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{shown}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(value, kind):
        raise InputError(f"{shown}: expected {expected}")
    return value
