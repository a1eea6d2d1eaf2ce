"""Readers of other datasets' layouts (workers/datasets/) on samples written by shared/sample_data.py."""

import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import pytest

from shared.errors import InputError
from shared.labels import FAKE, REAL
from shared.sample_data import make_dfdc_sample, make_ffpp_sample, make_folders_sample
from workers.datasets import DatasetVideo, detect_format, read_dataset
from workers.datasets.dfdc import read_dfdc
from workers.datasets.ffpp import read_ffpp
from workers.datasets.folders import read_folders


def touch(root: Path, *rels: str) -> Path:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return root


def groups_of(scan) -> dict[str, set[str]]:
    groups = defaultdict(set)
    for video in scan.videos:
        groups[video.identity.group_key].add(Path(video.rel_path).name)
    return dict(groups)


def frames_in(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


# --- FaceForensics++ ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ffpp(tmp_path_factory):
    return make_ffpp_sample(tmp_path_factory.mktemp("ffpp"))


def test_ffpp_sample_is_read_with_labels_methods_groups_and_official_test(ffpp):
    root = Path(ffpp["root"])
    assert detect_format(root) == "ffpp"
    scan = read_dataset(root)
    assert scan.format == "ffpp" and scan.warnings == [] and scan.test_list_found
    assert all(isinstance(v, DatasetVideo) for v in scan.videos)
    expected = {rel for rels in ffpp["videos"].values() for rel in rels}
    assert {v.rel_path for v in scan.videos} == expected and len(expected) == 21
    assert Counter(v.label for v in scan.videos) == {REAL: 8, FAKE: 13}
    assert Counter(v.method for v in scan.videos) == {None: 8, "Deepfakes": 6, "FaceSwap": 6, "DeepFakeDetection": 1}
    # Pairs (000, 001), (002, 003), (004, 005): each pair with its four fakes is one group; the
    # actors and their DeepFakeDetection fake another.
    groups = groups_of(scan)
    assert sorted(len(members) for members in groups.values()) == [3, 4, 4, 4]
    assert {"000.mp4", "001.mp4", "000_001.mp4", "001_000.mp4"} in groups.values()
    assert {v.rel_path for v in scan.videos if v.official_test} == set(ffpp["test_videos"])
    assert len(ffpp["test_videos"]) == 6  # 004, 005 and 004_005, 005_004 of both methods
    splits = Counter(v.official_split for v in scan.videos)
    assert splits == {"train": 6, "val": 6, "test": 6, None: 3}  # DeepFakeDetection and actors: no split
    fake = next(v for v in scan.videos if v.rel_path.endswith("Deepfakes/c23/videos/002_003.mp4"))
    assert (fake.identity.source, fake.identity.target) == ("002", "003")
    assert fake.identity.source_video == "original_sequences/youtube/c23/videos/002.mp4"
    assert fake.folder == "manipulated_sequences/Deepfakes/c23/videos"
    assert frames_in(root / fake.rel_path) == 10


def test_ffpp_splits_from_an_explicit_folder_or_none(ffpp, tmp_path):
    root = tmp_path / "ffpp"
    shutil.copytree(ffpp["root"], root)
    shutil.move(root / "splits", tmp_path / "elsewhere")
    unmarked = read_ffpp(root)
    assert not unmarked.test_list_found and not any(v.official_test for v in unmarked.videos)
    marked = read_ffpp(root, splits_dir=tmp_path / "elsewhere")
    assert sum(v.official_test for v in marked.videos) == 6
    with pytest.raises(InputError, match="no such splits directory"):
        read_ffpp(root, splits_dir=tmp_path / "nope")


def test_ffpp_other_compression_names_the_ones_present(ffpp):
    with pytest.raises(InputError, match="compressions present: c23"):
        read_ffpp(ffpp["root"], compression="c40")
    with pytest.raises(InputError, match="unknown FF"):
        read_ffpp(ffpp["root"], compression="c99")


def test_ffpp_union_find_joins_originals_connected_through_fakes(tmp_path):
    videos = "original_sequences/youtube/raw/videos"
    root = touch(tmp_path, *(f"{videos}/{n}.mp4" for n in ("000", "001", "002", "003", "004")),
                 "manipulated_sequences/Face2Face/raw/videos/000_001.mp4",
                 "manipulated_sequences/FaceShifter/raw/videos/002_001.mp4",
                 "manipulated_sequences/NeuralTextures/raw/videos/odd_name.mp4",
                 "manipulated_sequences/DeepFakeDetection/raw/videos/03_07__kitchen_pan__ABCD1234.mp4",
                 "original_sequences/actors/raw/videos/07__kitchen_pan.mp4",
                 "original_sequences/actors/raw/videos/03__kitchen_pan.mp4",
                 "original_sequences/actors/raw/videos/05__kitchen_pan.mp4")
    scan = read_ffpp(root, compression="raw")
    groups = groups_of(scan)
    assert groups["ffpp:000"] == {"000.mp4", "001.mp4", "002.mp4", "000_001.mp4", "002_001.mp4"}
    assert groups["ffpp:003"] == {"003.mp4"}
    assert groups["ffpp:actor03"] == {"03__kitchen_pan.mp4", "07__kitchen_pan.mp4", "03_07__kitchen_pan__ABCD1234.mp4"}
    assert groups["ffpp:actor05"] == {"05__kitchen_pan.mp4"}
    assert groups["ffpp:NeuralTextures/odd_name"] == {"odd_name.mp4"}
    assert scan.warnings == [] and not scan.test_list_found


def test_ffpp_split_problems(tmp_path):
    videos = "original_sequences/youtube/c23/videos"
    root = touch(tmp_path, f"{videos}/000.mp4", f"{videos}/001.mp4")
    (root / "splits").mkdir()
    (root / "splits" / "test.json").write_text(json.dumps([["000", "001"], ["998", "999"], ["bad"], 7]))
    (root / "splits" / "train.json").write_text(json.dumps([["000", "002"]]))
    scan = read_ffpp(root)
    assert all(v.official_test for v in scan.videos)
    assert sum("not a pair" in w for w in scan.warnings) == 2
    assert any("test.json names 2 original videos that are not on disk" in w for w in scan.warnings)
    assert any("in both train.json and test.json" in w for w in scan.warnings)
    (root / "splits" / "val.json").write_text('[["000", "001"],')
    with pytest.raises(InputError) as info:
        read_ffpp(root)
    assert "val.json: invalid JSON" in str(info.value) and "\n" not in str(info.value)


# --- DFDC -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dfdc(tmp_path_factory):
    return make_dfdc_sample(tmp_path_factory.mktemp("dfdc"))


def test_dfdc_sample_is_read_with_groups_and_the_public_test_set(dfdc):
    root = Path(dfdc["root"])
    assert detect_format(root) == "dfdc"
    scan = read_dataset(root)
    assert scan.format == "dfdc" and scan.warnings == [] and scan.test_list_found
    assert {v.rel_path: v.label for v in scan.videos} == dfdc["videos"]
    assert len(scan.videos) == 15 and Counter(v.label for v in scan.videos) == {REAL: 6, FAKE: 9}
    by_path = {v.rel_path: v for v in scan.videos}
    for fake, original in dfdc["originals"].items():
        assert by_path[fake].identity.group_key == by_path[original].identity.group_key == f"dfdc:{Path(original).name}"
        assert by_path[fake].identity.source_video == original
    assert len(groups_of(scan)) == 4 + 3  # one per original, one per test video
    assert {v.rel_path for v in scan.videos if v.official_test} == set(dfdc["test_videos"])
    assert all(v.method is None for v in scan.videos)
    assert Counter(v.official_split for v in scan.videos) == {"train": 12, "test": 3}


def test_many_missing_dfdc_videos_make_one_warning(tmp_path):
    root = touch(tmp_path, "part/a.mp4")
    listing = {"a.mp4": {"label": "REAL"}} | {f"gone{k}.mp4": {"label": "REAL"} for k in range(40)}
    (root / "part" / "metadata.json").write_text(json.dumps(listing))
    scan = read_dfdc(root)
    assert len(scan.videos) == 1
    assert scan.warnings == ["part/metadata.json: 40 listed videos are not on disk (first: gone0.mp4)"]


def test_dfdc_bad_entries_and_missing_files_are_warnings(dfdc, tmp_path):
    root = tmp_path / "dfdc"
    shutil.copytree(dfdc["root"], root)
    meta_path = root / "dfdc_train_part_0" / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    metadata["gone.mp4"] = {"label": "REAL"}
    metadata["weird.mp4"] = {"label": "MAYBE"}
    metadata["notes.txt"] = {"label": "FAKE", "original": "x.mp4"}
    meta_path.write_text(json.dumps(metadata))
    touch(root, "dfdc_train_part_0/unlisted.mp4")
    labels = root / "test_videos" / "labels.csv"
    labels.write_text(labels.read_text() + "broken line\nmissing.mp4,1\n")
    scan = read_dfdc(root)
    assert len(scan.videos) == 15
    text = "\n".join(scan.warnings)
    assert "gone.mp4 is listed but not on disk" in text and "missing.mp4 (line 6) is listed but not on disk" in text
    assert "'weird.mp4'" in text and "'notes.txt'" in text and "cannot parse 'broken line'" in text
    assert "1 videos are in no metadata.json" in text and "unlisted.mp4" in text
    assert len(scan.warnings) == 6


def test_broken_dfdc_metadata_is_a_one_line_input_error(tmp_path):
    root = touch(tmp_path, "dfdc_train_part_3/a.mp4")
    (root / "dfdc_train_part_3" / "metadata.json").write_text('{"a.mp4": {"label": "REAL"},\n')
    with pytest.raises(InputError) as info:
        read_dataset(root)
    message = str(info.value)
    assert "dfdc_train_part_3/metadata.json: invalid JSON" in message and "\n" not in message


def test_a_fake_whose_original_is_missing_is_still_grouped_by_it(tmp_path):
    root = touch(tmp_path, "a.mp4", "b.mp4")
    (root / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "FAKE", "original": "z.mp4"},
                                                    "b.mp4": {"label": "FAKE", "original": "z.mp4"}}))
    scan = read_dfdc(root)
    assert {v.identity.group_key for v in scan.videos} == {"dfdc:z.mp4"}
    assert any("1 originals named by fakes are not on disk" in w for w in scan.warnings)
    assert not scan.test_list_found


# --- real/ and fake/ folders ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return make_folders_sample(tmp_path_factory.mktemp("folders"))


def test_folders_sample_is_read_with_groups_from_groups_csv(folders):
    root = Path(folders["root"])
    assert detect_format(root) == "folders"
    scan = read_dataset(root)
    assert scan.format == "folders" and scan.warnings == [] and not scan.test_list_found
    assert {v.rel_path: v.label for v in scan.videos} == folders["videos"]
    assert len(scan.videos) == 7 and not any(v.official_test for v in scan.videos)
    by_path = {v.rel_path: v for v in scan.videos}
    for rel, group in folders["groups"].items():
        assert by_path[rel].identity.group_key == f"group:{group}"
    assert by_path["real/extra.mp4"].identity.group_key == "video:real/extra.mp4"
    assert by_path["fake/swapped/person0_swap.mp4"].folder == "fake/swapped"


def test_folders_without_groups_csv_and_with_bad_lines(tmp_path):
    root = touch(tmp_path, "Real/a.mp4", "fake/b.mp4", "fake/deep/c.mp4", "fake/.hidden.mp4", "fake/d.avi")
    scan = read_folders(root)
    assert {v.rel_path: v.label for v in scan.videos} == {"Real/a.mp4": REAL, "fake/b.mp4": FAKE,
                                                          "fake/deep/c.mp4": FAKE}
    assert len(groups_of(scan)) == 3
    (root / "groups.csv").write_text("video,group\nfake/b.mp4,p1\nReal/a.mp4,p1\nfake/zzz.mp4,p2\njust-one-cell\n")
    scan = read_folders(root)
    assert len(groups_of(scan)) == 2
    assert len(scan.warnings) == 2
    assert any("fake/zzz.mp4 is not in the dataset" in w for w in scan.warnings)


# --- Celeb-DF, detection --------------------------------------------------------------------------

def test_celebdf_goes_through_the_existing_reader(tmp_path):
    root = touch(tmp_path, "Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4", "YouTube-real/00000.mp4")
    (root / "List_of_testing_videos.txt").write_text("0 Celeb-synthesis/id0_id1_0000.mp4")
    assert detect_format(root) == "celebdf"
    scan = read_dataset(root, "auto")
    assert scan.format == "celebdf" and scan.test_list_found
    assert all(isinstance(v, DatasetVideo) and v.method is None for v in scan.videos)
    assert {v.rel_path for v in scan.videos if v.official_test} == {"Celeb-synthesis/id0_id1_0000.mp4"}
    assert {v.rel_path for v in scan.videos if v.official_split == "test"} == {"Celeb-synthesis/id0_id1_0000.mp4"}
    assert len(groups_of(scan)) == 2


def test_nothing_recognisable_names_every_layout_looked_for(tmp_path):
    (tmp_path / "videos").mkdir()
    with pytest.raises(InputError) as info:
        detect_format(tmp_path)
    message = str(info.value)
    for expected in ("Celeb-real/", "original_sequences/", "metadata.json", "labels.csv", "real/", "fake/"):
        assert expected in message
    with pytest.raises(InputError, match="no such directory"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(InputError, match="unknown dataset format"):
        read_dataset(tmp_path, "kinetics")


def test_two_layouts_in_one_folder_must_be_named(tmp_path):
    root = touch(tmp_path, "real/a.mp4", "Celeb-real/id0_0000.mp4")
    with pytest.raises(InputError, match="several layouts"):
        detect_format(root)
    assert len(read_dataset(root, "folders").videos) == 1


def first_frame(path: Path):
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok, path
    return frame.astype("int16")


def test_sample_fakes_are_their_originals_with_another_face(ffpp, dfdc, folders):
    pairs = [(Path(ffpp["root"]) / rel, Path(ffpp["root"]) / ffpp["videos"][next(iter(ffpp["videos"]))][0])
             for rel in ffpp["videos"]["manipulated_sequences/Deepfakes/c23/videos"][:1]]
    pairs += [(Path(dfdc["root"]) / fake, Path(dfdc["root"]) / original) for fake, original in dfdc["originals"].items()]
    pairs += [(Path(folders["root"]) / "fake/swapped/person1_swap.mp4", Path(folders["root"]) / "real/person1.mp4")]
    for fake, original in pairs:
        changed = (abs(first_frame(fake) - first_frame(original)).max(axis=2) > 24).mean()
        assert 0.003 < changed < 0.2, (fake.name, changed)  # same footage, another face blended in
        assert frames_in(fake) == frames_in(original) == 10


def test_a_new_format_is_one_registry_entry(tmp_path, monkeypatch):
    """Detection, the error naming every layout and reading all follow READERS; a reader gets only
    the options it declares."""
    from workers.datasets import READERS, DatasetScan, Format

    def read_toy(root, level=1):
        return DatasetScan(root=Path(root), videos=[], format=f"toy{level}")

    toy = Format(name="toy", layout="toy (toy.txt)", matches=lambda root: (root / "toy.txt").is_file(),
                 read=read_toy, options=("level",))
    monkeypatch.setitem(READERS, "toy", toy)
    with pytest.raises(InputError, match=r"toy \(toy.txt\)"):
        detect_format(tmp_path)
    (tmp_path / "toy.txt").write_text("")
    assert detect_format(tmp_path) == "toy"
    assert read_dataset(tmp_path, level=2, compression="c40").format == "toy2"
