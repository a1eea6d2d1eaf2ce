from pathlib import Path

import pytest

from shared.errors import InputError
from workers.datasets.celebdf import parse_identity, parse_test_list, read_celebdf
from shared.labels import FAKE, REAL


def make_layout(root: Path, files: list[str], test_list: str | None = None) -> Path:
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    if test_list is not None:
        (root / "List_of_testing_videos.txt").write_text(test_list)
    return root


def test_identity_of_a_real_celeb_video():
    identity = parse_identity("Celeb-real", "id12_0003")
    assert identity.source == "id12" and identity.target is None
    assert identity.source_video is None
    assert identity.group_key == "celeb:id12"


def test_a_fake_is_grouped_with_the_real_video_it_was_made_from():
    fake = parse_identity("Celeb-synthesis", "id12_id40_0003")
    assert (fake.source, fake.target) == ("id12", "id40")
    assert fake.source_video == "Celeb-real/id12_0003.mp4"
    assert fake.group_key == parse_identity("Celeb-real", "id12_0003").group_key


def test_youtube_videos_are_groups_of_their_own():
    a, b = parse_identity("YouTube-real", "00001"), parse_identity("YouTube-real", "00002")
    assert a.source is None and a.group_key != b.group_key


def test_names_outside_the_convention_still_get_a_group():
    odd = parse_identity("Celeb-synthesis", "weird-name")
    assert odd.source is None and odd.group_key == "Celeb-synthesis:weird-name"


def test_test_list_labels_are_inverted_and_problems_are_warnings():
    known = {"Celeb-real/id0_0000.mp4": REAL, "Celeb-synthesis/id0_id1_0000.mp4": FAKE,
             "YouTube-real/00001.mp4": REAL}
    text = "\n".join([
        "1 Celeb-real/id0_0000.mp4",          # 1 = real: agrees
        "0 Celeb-synthesis/id0_id1_0000.mp4",  # 0 = fake: agrees
        "0 YouTube-real/00001.mp4",            # says fake, folder says real
        "1 Celeb-real/id7_0000.mp4",           # not on disk
        "garbage",
    ])  # no trailing newline, as in the official file
    marked, warnings = parse_test_list(text, known)
    assert marked == set(known)
    assert len(warnings) == 3
    assert any("not in the dataset" in w for w in warnings)
    assert any("folder says real" in w for w in warnings)
    assert any("cannot parse" in w for w in warnings)


def test_scan_finds_videos_labels_and_official_test_set(tmp_path):
    root = make_layout(
        tmp_path,
        ["Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4", "Celeb-synthesis/id0_id1_0000.mp4",
         "YouTube-real/00000.mp4", "Celeb-real/readme.txt", "Celeb-real/.hidden.mp4", "Other/x.mp4"],
        test_list="1 Celeb-real/id0_0001.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4",
    )
    result = read_celebdf(root)
    by_path = {v.rel_path: v for v in result.videos}
    assert set(by_path) == {"Celeb-real/id0_0000.mp4", "Celeb-real/id0_0001.mp4",
                            "Celeb-synthesis/id0_id1_0000.mp4", "YouTube-real/00000.mp4"}
    assert by_path["Celeb-synthesis/id0_id1_0000.mp4"].label == FAKE
    assert by_path["YouTube-real/00000.mp4"].label == REAL
    assert {p for p, v in by_path.items() if v.official_test} == {
        "Celeb-real/id0_0001.mp4", "Celeb-synthesis/id0_id1_0000.mp4"}
    assert result.test_list_found and result.warnings == []


def test_scan_warns_about_fakes_whose_source_is_missing(tmp_path):
    root = make_layout(tmp_path, ["Celeb-real/id0_0000.mp4", "Celeb-synthesis/id3_id1_0007.mp4"])
    result = read_celebdf(root)
    assert any("Celeb-real/id3_0007.mp4" in w for w in result.warnings)


def test_missing_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        read_celebdf(tmp_path / "nope")


def test_folder_without_celeb_df_layout_names_the_expected_folders(tmp_path):
    (tmp_path / "videos").mkdir()
    with pytest.raises(InputError) as info:
        read_celebdf(tmp_path)
    for folder in ("Celeb-real/", "Celeb-synthesis/", "YouTube-real/"):
        assert folder in str(info.value)
