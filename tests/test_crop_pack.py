"""Crop packs: each video's crops decoded once by the ingest, read by training instead of its PNGs."""

import os

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from db.models import Crop, Video
from db.session import session_scope
from shared.settings import reset_settings
from workers.crop_pack import PACK_NAME, read_pack, read_pack_header, write_pack_atomically
from workers.ingest import IngestParams, process_video
from workers.planning.ingest import register_videos
from workers.datasets.celebdf import read_celebdf
from workers.training.data import crops_from_packs, make_dataset


def random_crops(count, size=128, seed=0):
    return [np.random.default_rng([seed, i]).integers(0, 256, (size, size, 3), dtype=np.uint8)
            for i in range(count)]


def write_video_folder(folder, count, size=128, seed=0, pack=True):
    """PNG crops of one video (RGB pixels written as PNG) and, with ``pack``, its pack."""
    folder.mkdir(parents=True, exist_ok=True)
    images = random_crops(count, size, seed)
    names = [f"f{i * 90:06d}_00.png" for i in range(count)]
    for name, image in zip(names, images):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if pack:
        write_pack_atomically(folder / PACK_NAME, names, images)
    return [str(folder / name) for name in names], images


def all_images(dataset):
    batches = [batch[0] if isinstance(batch, tuple) else batch for batch in dataset]
    return np.concatenate([b.numpy() for b in batches])


def test_a_pack_round_trips_and_a_damaged_one_is_not_read(tmp_path):
    images = random_crops(3, size=32)
    write_pack_atomically(tmp_path / PACK_NAME, ["a.png", "b.png", "c.png"], images)
    names, pixels = read_pack(tmp_path / PACK_NAME)
    assert names == ("a.png", "b.png", "c.png") and np.array_equal(pixels, np.stack(images))
    header = read_pack_header(tmp_path / PACK_NAME)
    assert header.offset % 64 == 0 and (header.height, header.width) == (32, 32)
    assert [p.name for p in tmp_path.iterdir()] == [PACK_NAME]  # no temporary file left

    data = (tmp_path / PACK_NAME).read_bytes()
    (tmp_path / "short.pack").write_bytes(data[:-1])
    (tmp_path / "other.pack").write_bytes(b"PNG" + data[3:])
    assert read_pack_header(tmp_path / "short.pack") is None
    assert read_pack_header(tmp_path / "other.pack") is None
    assert read_pack_header(tmp_path / "missing.pack") is None
    with pytest.raises(ValueError, match="one name per crop"):
        write_pack_atomically(tmp_path / "x.pack", ["a.png"], images)


@pytest.mark.parametrize("training", [False, True])
def test_packs_give_the_same_crops_and_labels_as_their_pngs(tmp_path, training):
    paths_a, _ = write_video_folder(tmp_path / "a", 5, seed=1)
    paths_b, _ = write_video_folder(tmp_path / "b", 4, seed=2)
    paths_c, _ = write_video_folder(tmp_path / "c", 3, seed=3, pack=False)  # an ingest before packs
    paths_d, _ = write_video_folder(tmp_path / "d", 2, seed=4)
    # Interleaved folders and a subset of a video's crops, as a split may give them; d whole, in order.
    paths = [paths_a[0], paths_b[1], paths_a[3], paths_c[0], paths_a[4], paths_b[0], paths_c[2], paths_b[3],
             *paths_d]
    labels = [0, 1, 0, 1, 0, 1, 1, 1, 0, 0]
    assert crops_from_packs(paths) == 8

    from_packs = list(make_dataset(paths, labels, batch_size=3, training=training, seed=5))
    for folder in ("a", "b", "d"):
        (tmp_path / folder / PACK_NAME).unlink()
    from_pngs = list(make_dataset(paths, labels, batch_size=3, training=training, seed=5))
    assert crops_from_packs(paths) == 0

    def pairs(batches):
        images = np.concatenate([b[0].numpy() for b in batches])
        labels_out = np.concatenate([b[1].numpy() for b in batches])
        return [(img.tobytes(), float(label)) for img, label in zip(images, labels_out)]

    packed, decoded = pairs(from_packs), pairs(from_pngs)
    assert len(packed) == len(paths)
    if training:  # the order is the run's own (whole videos are permuted), the content the same
        assert sorted(packed) == sorted(decoded)
    else:  # evaluation keeps the caller's order exactly
        assert packed == decoded


def test_a_pack_older_than_a_png_or_missing_a_crop_is_not_used(tmp_path):
    paths, images = write_video_folder(tmp_path / "v", 3, seed=4)
    replacement = random_crops(1, seed=99)[0]
    cv2.imwrite(paths[1], cv2.cvtColor(replacement, cv2.COLOR_RGB2BGR))
    stamp = os.stat(tmp_path / "v" / PACK_NAME).st_mtime_ns + 10**9
    os.utime(paths[1], ns=(stamp, stamp))  # the PNG was rewritten after the pack
    got = all_images(make_dataset(paths, None, batch_size=4, training=False))
    assert np.array_equal(got[1], replacement) and np.array_equal(got[0], images[0])
    assert crops_from_packs(paths) == 0

    other, _ = write_video_folder(tmp_path / "w", 2, seed=5)
    extra = tmp_path / "w" / "f999999_00.png"  # a crop the pack does not hold
    cv2.imwrite(str(extra), random_crops(1, seed=7)[0])
    os.utime(extra, ns=(0, 0))
    assert crops_from_packs(other + [str(extra)]) == 0
    assert crops_from_packs(other) == 2


def test_packs_of_another_size_are_resized_like_pngs_and_need_no_file_cache(tmp_path):
    paths, _ = write_video_folder(tmp_path / "v", 3, size=96, seed=6)
    cache = tmp_path / "cache" / "train"
    cache.parent.mkdir()
    from_pack = all_images(make_dataset(paths, [0, 1, 0], batch_size=2, training=False, image_size=64,
                                        cache=str(cache)))
    assert list(cache.parent.iterdir()) == []  # the packs are the decoded crops already
    (tmp_path / "v" / PACK_NAME).unlink()
    from_png = all_images(make_dataset(paths, [0, 1, 0], batch_size=2, training=False, image_size=64,
                                       cache=str(cache)))
    assert from_pack.shape == (3, 64, 64, 3) and np.array_equal(from_pack, from_png)
    assert list(cache.parent.iterdir())  # PNGs still go through the file cache


@pytest.fixture
def registered(local_db, sample_root):
    return register_videos(read_celebdf(sample_root), IngestParams().as_dict(), retry_failed=False, embedded=True)


def video_and_crops(rel_path):
    with session_scope() as session:
        vid = session.scalar(select(Video.id).where(Video.rel_path == rel_path))
        paths = session.scalars(select(Crop.crop_path).where(Crop.video_id == vid).order_by(Crop.crop_path)).all()
    return vid, paths


def test_the_ingest_writes_a_pack_of_exactly_its_png_crops(registered, local_db, detector, monkeypatch):
    vid, _ = video_and_crops("Celeb-real/id0_0000.mp4")
    assert process_video(vid, IngestParams(), detector=detector)["status"] == "done"
    _, crop_paths = video_and_crops("Celeb-real/id0_0000.mp4")
    folder = local_db.data_dir / crop_paths[0].rsplit("/", 1)[0]
    names, pixels = read_pack(folder / PACK_NAME)
    assert list(names) == [p.rsplit("/", 1)[1] for p in crop_paths]
    for name, image in zip(names, pixels):
        assert np.array_equal(image, cv2.cvtColor(cv2.imread(str(folder / name)), cv2.COLOR_BGR2RGB))
    assert crops_from_packs([local_db.data_dir / p for p in crop_paths]) == len(crop_paths)

    # Re-done with packs turned off: the old pack goes (it would describe the old PNGs).
    monkeypatch.setenv("CROP_PACKS", "false")
    reset_settings()
    process_video(vid, IngestParams(size=64), force=True, detector=detector)
    assert not (folder / PACK_NAME).exists()


def test_a_failed_video_leaves_no_pack(registered, local_db, detector):
    vid, _ = video_and_crops("Celeb-real/id9_0000.mp4")  # the corrupt video
    assert process_video(vid, IngestParams(), detector=detector)["status"] == "failed"
    assert not list(local_db.data_dir.rglob(PACK_NAME))
