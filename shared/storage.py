"""How the database names the pipeline's files: by keys relative to the storage root.

Crops, packs and run artifacts are recorded as *keys*, POSIX paths relative to the storage root
(``DATA_DIR``), and resolved when they are read, so a copied or moved ``DATA_DIR`` reads and
writes its own files, never the original's. Rows written before keys were relative hold absolute
paths; they are re-rooted at the first folder the pipeline owns (``runs/``, ``crops/``), so they
read the copy's files too (migration 0008 rewrites them once; ``resolve`` covers a row it missed).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path, PurePosixPath

# Top-level folders of the storage root that the pipeline writes (and the anchors of old absolute paths).
OWNED_FOLDERS = ("runs", "crops", "uploads", "judgements")


def _root(root: Path | None) -> Path:
    if root is not None:
        return Path(root)
    from shared.settings import get_settings

    return get_settings().data_dir


def legacy_key(path: str) -> str | None:
    """The key an absolute path written by an older version names: from its last owned folder on
    (``/old/data/runs/ab12/model.keras`` -> ``runs/ab12/model.keras``); None if it names none."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] in OWNED_FOLDERS:
            return str(PurePosixPath(*parts[i:]))
    return None


def storage_key(path: str | Path, root: Path | None = None) -> str:
    """The key of a file under the storage root (what the database records)."""
    path = Path(path)
    if not path.is_absolute():
        return PurePosixPath(*path.parts).as_posix()
    roots = [_root(root)]
    if root is None:  # a copy fetched from an object store names the same key under CACHE_DIR
        from shared.settings import get_settings

        roots.insert(0, get_settings().cache_path)
    for base in roots:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return legacy_key(str(path)) or str(path)


def resolve(key: str | Path, root: Path | None = None) -> Path:
    """The local file a recorded key (or an older row's absolute path) names under the storage root."""
    root = _root(root)
    text = str(key)
    path = Path(text)
    if not path.is_absolute():
        return root / path
    if path == root or root in path.parents:
        return path
    rebased = legacy_key(text)
    return root / rebased if rebased else path


def artifact_keys(artifacts: dict, root: Path | None = None) -> dict:
    """Artifacts (file paths, lists of them, None) as keys, for the database."""
    return _map(artifacts, lambda p: storage_key(p, root))


def resolve_artifacts(artifacts: dict | None, root: Path | None = None) -> dict:
    """Recorded artifacts as local paths (strings), for readers and people."""
    return _map(artifacts or {}, lambda k: str(resolve(k, root)))


def artifact_locations(artifacts: dict | None) -> dict:
    """Recorded artifacts where people find them: local paths, or s3:// URLs with an object store."""
    from shared.settings import get_settings

    url = get_settings().storage_url.rstrip("/")
    if not url:
        return resolve_artifacts(artifacts)
    return _map(artifacts or {}, lambda k: f"{url}/{storage_key(k)}")


def _map(artifacts: dict, convert) -> dict:
    out = {}
    for name, value in artifacts.items():
        if isinstance(value, str):
            out[name] = convert(value)
        elif isinstance(value, list):
            out[name] = [convert(v) if isinstance(v, str) else v for v in value]
        else:
            out[name] = value
    return out


# --- Where the files live: the local DATA_DIR or an S3-compatible object store (STORAGE_URL) ---

PROBE_KEY = ".storage-check"


class StorageError(ConnectionError):
    """The object store could not be reached or refused an operation (transient: retry later)."""


class MissingObjects(StorageError):
    """The store answered, but holds no object under a key that was asked for."""


class Store:
    """The few operations the pipeline needs on its storage root, by key.

    ``LocalStore`` is DATA_DIR on local disk (as before STORAGE_URL existed); ``ObjectStore`` an
    ``s3://bucket/prefix`` opened through fsspec (s3fs). Writes are whole-object and atomic: a
    reader sees the old object or the new one, never part of one."""

    url: str
    remote: bool

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, local: Path) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def get_file(self, key: str, local: Path) -> None: ...
    def size(self, key: str) -> int | None: ...  # None: no such object
    def listing(self, prefix: str) -> dict[str, tuple[int, int | None]]: ...  # key -> (size, modified ns)
    def delete(self, prefix: str) -> None: ...  # the object, or every object under prefix/

    def create_bucket(self) -> bool:
        """Make the root exist (a fresh object store has no bucket); True if it was made now."""
        return False

    def list(self, prefix: str) -> dict[str, int]:
        """key -> size of every object under ``prefix``."""
        return {key: size for key, (size, _) in self.listing(prefix).items()}

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def put_tree(self, prefix: str, folder: Path, names=None) -> list[str]:
        """Upload ``folder``'s files (or ``names`` in it) under ``prefix``; returns their keys."""
        from concurrent.futures import ThreadPoolExecutor

        folder = Path(folder)
        files = sorted(names) if names is not None else sorted(p.name for p in folder.rglob("*") if p.is_file())
        keys = [f"{prefix.rstrip('/')}/{name}" for name in files]
        # Parallel requests hide an object store's per-request latency (~11 ms here, more over a network).
        with ThreadPoolExecutor(8 if self.remote else 1) as pool:
            list(pool.map(lambda pair: self.put_file(*pair), [(k, folder / n) for k, n in zip(keys, files)]))
        return keys

    def prune(self, prefix: str, keep) -> None:
        """Delete the objects directly under ``prefix`` whose names are not in ``keep`` (what an
        earlier delivery of the same task wrote and this one did not)."""
        prefix = prefix.rstrip("/")
        for key in self.list(prefix):
            if key.rsplit("/", 1)[-1] not in keep:
                self.delete(key)


class LocalStore(Store):
    remote = False

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_bytes(self, key: str, data: bytes) -> None:
        import os
        import tempfile

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, local: Path) -> None:
        if Path(local).resolve() != self._path(key).resolve():
            self.put_bytes(key, Path(local).read_bytes())

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def get_file(self, key: str, local: Path) -> None:
        import shutil

        if Path(local).resolve() != self._path(key).resolve():
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._path(key), local)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def listing(self, prefix: str) -> dict[str, tuple[int, int | None]]:
        base = self._path(prefix)
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        return {p.relative_to(self.root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}

    def delete(self, prefix: str) -> None:
        import shutil

        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


class ObjectStore(Store):
    """``s3://bucket/prefix`` through s3fs. Endpoint and credentials come from the standard AWS
    variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION ...), read by
    botocore itself: they are never part of ``url`` nor printed."""

    remote = True

    def __init__(self, url: str):
        import os

        try:
            import s3fs
        except ImportError:
            from shared.errors import InputError

            raise InputError(f"STORAGE_URL={url}: needs s3fs (pip install 'celebdf-pipeline[s3]')") from None
        self.url = url.rstrip("/")
        self.base = self.url[len("s3://"):]
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        # No listing cache: another host's writes must be seen at once. Few retries: a store that
        # is down fails the task fast, and the task (not the client) waits and retries.
        self.fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                                    endpoint_url=endpoint or None,
                                    config_kwargs={"retries": {"max_attempts": 2, "mode": "standard"},
                                                   "connect_timeout": 5, "read_timeout": 30})

    @property
    def endpoint(self) -> str | None:
        return self.fs.client_kwargs.get("endpoint_url") or getattr(self.fs, "endpoint_url", None)

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def _call(self, what: str, key: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as exc:  # botocore/aiohttp errors: the store is unreachable or refused
            raise StorageError(f"{what} s3://{self._path(key)}: {type(exc).__name__}: {exc}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call("cannot write", key, self.fs.pipe_file, self._path(key), data)

    def put_file(self, key: str, local: Path) -> None:
        self._call("cannot write", key, self.fs.put_file, str(local), self._path(key))

    def get_bytes(self, key: str) -> bytes:
        return self._call("cannot read", key, self.fs.cat_file, self._path(key))

    def get_file(self, key: str, local: Path) -> None:
        import os

        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.part")
        try:
            self._call("cannot read", key, self.fs.get_file, self._path(key), str(tmp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        try:
            info = self._call("cannot read", key, self.fs.info, self._path(key))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def listing(self, prefix: str) -> dict[str, tuple[int, int | None]]:
        start = len(self.base) + 1
        try:
            found = self._call("cannot list", prefix, self.fs.find, self._path(prefix), detail=True)
        except FileNotFoundError:
            return {}
        return {path[start:]: (int(info["size"]), _ns(info.get("LastModified")))
                for path, info in found.items() if info.get("type") == "file"}

    def delete(self, prefix: str) -> None:
        keys = list(self.list(prefix))
        if keys:
            self._call("cannot delete", prefix, self.fs.rm, [self._path(k) for k in keys])

    def create_bucket(self) -> bool:
        bucket = self.base.split("/", 1)[0]
        if self._call("cannot read", "", self.fs.exists, bucket):
            return False
        try:
            self._call("cannot create the bucket of", "", self.fs.mkdir, bucket)
        except StorageError:
            if self._call("cannot read", "", self.fs.exists, bucket):  # another process made it first
                return False
            raise
        return True


def _ns(when) -> int | None:
    """An S3 LastModified (a datetime, whole seconds on most servers) in nanoseconds since the epoch."""
    if when is None or not hasattr(when, "timestamp"):
        return None
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def open_store(url: str | None = None) -> Store:
    """The store STORAGE_URL names (DATA_DIR on local disk when it is not set)."""
    from shared.settings import get_settings

    settings = get_settings()
    url = url if url is not None else settings.storage_url
    if not url:
        return LocalStore(settings.data_dir)
    if url.startswith("s3://") and len(url) > len("s3://"):
        import os

        # One client per process (a forked worker child must not share its parent's event loop) and
        # per endpoint and key: a process whose AWS_* variables changed must not reach the old server.
        key = (url, os.getpid(), *(os.environ.get(name) for name in
                                   ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")))
        if key not in _stores:
            _stores[key] = ObjectStore(url)
        return _stores[key]
    from shared.errors import InputError

    raise InputError(f"STORAGE_URL={url}: not s3://bucket[/prefix] (leave it empty for DATA_DIR on local disk)")


_stores: dict[tuple, Store] = {}


def check_store(store: Store) -> dict:
    """Where data goes and whether this process can write, read and delete there."""
    import secrets
    import time

    result = {"storage": store.url, "remote": store.remote, "writable": False, "error": None}
    if store.remote:
        result["endpoint"] = store.endpoint or "AWS default"
    key, payload = f"{PROBE_KEY}/{secrets.token_hex(6)}", secrets.token_bytes(32)
    started = time.perf_counter()
    try:
        store.put_bytes(key, payload)
        if store.get_bytes(key) != payload:
            raise StorageError("read back other bytes than were written")
        store.delete(key)
        result["writable"] = True
    except (OSError, StorageError) as exc:
        result["error"] = " ".join(str(exc).split())
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def fetch_to_cache(store: Store, keys, cache_dir: Path, *, workers: int = 16, progress=None,
                   listing: dict[str, tuple[int, int | None]] | None = None) -> dict[str, Path]:
    """Local copies of ``keys`` under ``cache_dir`` (same relative layout), fetched in parallel.

    Each copy takes its object's modification time, so a cached copy reads as old as the object
    (a crop pack no older than its PNGs in the store is no older in the cache: workers/training/
    data.py reads the pack then). A file already in the cache with the object's size and time is
    reused (an earlier run's fetch); any other is fetched to a temporary name and renamed, then its
    size checked against the store's. ``listing``: the store's ``listing`` of the keys' folders, if
    the caller has it. ``progress(done, total, bytes)`` is called as files arrive. Raises
    MissingObjects when an object is missing, StorageError when one arrives with the wrong size.
    A LocalStore's keys are its own files: no copy."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    keys = list(dict.fromkeys(keys))
    if not store.remote:
        return {key: store.root / key for key in keys}
    cache_dir = Path(cache_dir)
    if listing is None:
        listing = {}
        for prefix in sorted({k.rsplit("/", 1)[0] for k in keys}):  # one listing per folder, not one HEAD per file
            listing.update(store.listing(prefix))
    missing = [k for k in keys if k not in listing]
    if missing:
        raise MissingObjects(f"{len(missing)} objects missing from {store.url}, e.g. {missing[0]}")

    def cached(key: str) -> bool:
        try:
            stat = (cache_dir / key).stat()
        except OSError:
            return False
        size, modified = listing[key]
        return stat.st_size == size and (modified is None or stat.st_mtime_ns == modified)

    todo = [k for k in keys if not cached(k)]
    done, fetched_bytes = len(keys) - len(todo), 0

    def one(key: str) -> int:
        size, modified = listing[key]
        store.get_file(key, cache_dir / key)
        got = (cache_dir / key).stat().st_size
        if got != size:
            (cache_dir / key).unlink(missing_ok=True)
            raise StorageError(f"{key}: fetched {got} bytes, the store holds {size}")
        if modified is not None:
            os.utime(cache_dir / key, ns=(modified, modified))
        return got

    if progress:
        progress(done, len(keys), 0)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for got in pool.map(one, todo):
            done, fetched_bytes = done + 1, fetched_bytes + got
            if progress:
                progress(done, len(keys), fetched_bytes)
    return {key: cache_dir / key for key in keys}


def local_copy(key: str) -> Path:
    """A local file with the object a recorded key names: the file itself under DATA_DIR, or a
    copy fetched into CACHE_DIR from an object store (reused while its size matches)."""
    from shared.settings import get_settings

    store = open_store()
    if not store.remote:
        return resolve(key, store.root)
    key = storage_key(key, get_settings().data_dir)
    return fetch_to_cache(store, [key], get_settings().cache_path)[key]


@contextmanager
def fetched(key: str):
    """A local file with the object ``key`` names, for the length of the block: the file itself under
    DATA_DIR (or an absolute path, a file of this host, as older rows and `predict --queue` on
    local disk record), or a temporary copy fetched from the object store and removed after (an
    uploaded video is read once: it is not kept in CACHE_DIR)."""
    import shutil
    import tempfile

    from shared.settings import get_settings

    if Path(key).is_absolute():
        yield Path(key)
        return
    store = open_store()
    if not store.remote:
        yield store.root / key
        return
    cache = get_settings().cache_path
    cache.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=cache, prefix=".fetched-"))
    try:
        local = folder / PurePosixPath(key).name
        store.get_file(key, local)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def upload_key(sha256: str) -> str:
    """Where a video sent to be judged is kept: by its content hash, never by the sender's file name."""
    return f"uploads/{sha256}"


def put_once(key: str, local: Path) -> str:
    """``local`` stored under ``key`` unless an object of its size is there already (keys named by
    content hash: the same bytes are stored once). Returns ``key``."""
    store = open_store()
    if store.size(key) != Path(local).stat().st_size:
        store.put_file(key, local)
    return key


def upload_folder(prefix: str, folder: Path, skip: Path | None = None, only: str | None = None) -> list[str]:
    """Every file of a local folder (but those under ``skip``) put under ``prefix`` of the store;
    nothing to do on local disk, where the folder is the store. Returns the keys written."""
    store = open_store()
    if not store.remote:
        return []
    folder = Path(folder)
    names = [only] if only else [p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                 if p.is_file() and not (skip and (p == skip or Path(skip) in p.parents))]
    return store.put_tree(prefix, folder, names)
