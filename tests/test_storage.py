"""The storage module against a real S3 server (SeaweedFS) and local disk: keys in, bytes out,
atomic whole-object writes, listing, deleting, and the training cache fetch."""

from __future__ import annotations

import pytest

from shared.storage import LocalStore, StorageError, check_store, fetch_to_cache, open_store


def exercise(store) -> None:
    store.put_bytes("crops/1/a/f000000_00.png", b"x" * 10)
    store.put_bytes("crops/1/a/f000000_00.png", b"y" * 20)  # a redelivered task overwrites
    store.put_bytes("crops/1/a/crops.pack", b"p" * 100)
    assert store.get_bytes("crops/1/a/f000000_00.png") == b"y" * 20
    assert store.size("crops/1/a/crops.pack") == 100 and store.size("crops/1/a/none.png") is None
    assert store.exists("crops/1/a/crops.pack") and not store.exists("crops/1/b/crops.pack")
    assert store.list("crops/1") == {"crops/1/a/f000000_00.png": 20, "crops/1/a/crops.pack": 100}
    store.delete("crops/1/a/f000000_00.png")
    assert store.list("crops/1/a") == {"crops/1/a/crops.pack": 100}
    store.delete("crops/1")
    assert store.list("crops/1") == {} and store.list("nothing/here") == {}


def test_local_store(tmp_path):
    exercise(LocalStore(tmp_path))
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_object_store_on_a_real_s3_server(seaweed, tmp_path):
    store = open_store("s3://pipeline/some/prefix")
    exercise(store)
    checked = check_store(store)
    assert checked["writable"] and checked["remote"] and checked["endpoint"] == seaweed.endpoint
    assert "test-secret" not in str(checked) and "test-key" not in str(checked)


def test_fetch_to_cache_copies_in_parallel_verifies_and_reuses(seaweed, tmp_path):
    store = open_store("s3://pipeline/data")
    keys = [f"crops/1/v{i}/crops.pack" for i in range(12)]
    for i, key in enumerate(keys):
        store.put_bytes(key, bytes([i]) * (1000 + i))
    seen = []
    local = fetch_to_cache(store, keys, tmp_path / "cache", workers=4, progress=lambda *a: seen.append(a))
    assert [local[k].read_bytes() for k in keys] == [bytes([i]) * (1000 + i) for i in range(12)]
    assert seen[-1] == (12, 12, sum(1000 + i for i in range(12)))
    # Reused: nothing fetched again; a truncated cached copy is fetched again.
    local[keys[0]].write_bytes(b"short")
    seen.clear()
    fetch_to_cache(store, keys, tmp_path / "cache", workers=4, progress=lambda *a: seen.append(a))
    assert seen[0] == (11, 12, 0) and seen[-1] == (12, 12, 1000)
    assert local[keys[0]].read_bytes() == bytes([0]) * 1000
    with pytest.raises(StorageError, match="1 objects missing"):
        fetch_to_cache(store, [*keys, "crops/1/gone/crops.pack"], tmp_path / "cache")


def test_a_store_that_is_down_is_a_storage_error_not_a_hang(seaweed, tmp_path):
    store = open_store("s3://pipeline/data")
    seaweed.stop()
    with pytest.raises(StorageError, match="cannot write"):
        store.put_bytes("crops/1/a/x.png", b"x")
    assert check_store(store)["writable"] is False
