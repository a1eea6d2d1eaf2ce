"""FaceForensics++ as its download script leaves it: original_sequences/..., manipulated_sequences/<Method>/...;
the official split from FF++'s train/val/test.json.

Videos sharing a ``group_key`` must stay on one side of a split: a fake is grouped with the real
videos it was made from, and every video connected to those (a union-find over the originals).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path, PurePosixPath

from shared.errors import InputError
from shared.labels import FAKE, REAL
from workers.datasets.base import (DatasetScan, DatasetVideo, Format, Groups, Identity, check_root, parent_folder,
                                   read_json, rel_to, videos_in)

COMPRESSIONS = ("raw", "c23", "c40")
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter", "DeepFakeDetection")
SPLITS = ("train", "val", "test")

_FFPP_ORIGINAL = re.compile(r"^(\d{3})$")  # youtube/000.mp4
_FFPP_FAKE = re.compile(r"^(\d{3})_(\d{3})$")  # <Method>/TTT_SSS.mp4: TTT's footage, SSS's face
_DFD_ACTOR = re.compile(r"^(\d{2})__(.+)$")  # actors/01__exit_phone_room.mp4
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__(.+?)__([A-Za-z0-9]+)$")  # 01_02__meeting_serious__YVGY8LOK.mp4


def _matches(root: Path) -> bool:
    return (root / "original_sequences").is_dir() or (root / "manipulated_sequences").is_dir()


def read_ffpp_splits(splits_dir: Path) -> tuple[dict[str, set[str]], list[str]]:
    """FF++'s ``train.json`` / ``val.json`` / ``test.json`` (lists of ``["TTT", "SSS"]`` pairs) as
    {split: set of video stems it covers}: both originals and both fakes TTT_SSS and SSS_TTT.
    Missing files are left out; a malformed pair is a warning; invalid JSON is an InputError."""
    covered: dict[str, set[str]] = {}
    warnings: list[str] = []
    for split in SPLITS:
        path = splits_dir / f"{split}.json"
        if not path.is_file():
            continue
        pairs = read_json(path, path, list, 'a list of ["TTT", "SSS"] pairs')
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
    root = check_root(root)
    if compression not in COMPRESSIONS:
        raise InputError(f"unknown FF++ compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    if not _matches(root):
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
    unknown = [method for _, _, _, method in present if method is not None and method not in METHODS]
    if unknown:
        warnings.append(f"manipulation folders not known to FF++ read as fakes too: {', '.join(unknown)}")

    groups = Groups()
    raw: list[tuple[str, int, Identity, str | None, str]] = []  # rel, label, identity (key unset), method, node
    for folder, kind, label, method in present:
        for path in videos_in(root / folder):
            rel, stem = rel_to(root, path), path.stem
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
        videos.append(DatasetVideo(rel, parent_folder(rel), label, replace(identity, group_key=groups.find(node)),
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


FORMAT = Format(
    name="ffpp",
    layout="FaceForensics++ (original_sequences/, manipulated_sequences/)",
    matches=_matches,
    read=read_ffpp,
    options=("compression", "splits_dir"),
)
