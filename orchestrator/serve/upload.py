"""A multipart upload streamed to disk as it arrives: hashed on the way, stopped at the size limit,
stored under the key ``uploads/<sha256>`` of the storage root (DATA_DIR/uploads, or the object store
STORAGE_URL names); the client's file name is kept as data only."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header


class UploadTooLarge(Exception):
    pass


class BadUpload(Exception):
    pass


@dataclass
class Upload:
    path: Path  # a temporary file in the uploads folder until ``store`` moves it
    sha256: str
    size: int
    file_name: str


class _Receiver:
    """MultipartParser callbacks: the first file part goes to disk, other parts are ignored."""

    def __init__(self, handle, max_bytes: int):
        self.handle, self.max_bytes = handle, max_bytes
        self.digest, self.size, self.file_name = hashlib.sha256(), 0, None
        self.in_file = self.got_file = False
        self.headers: dict[bytes, bytes] = {}
        self.field, self.value = b"", b""

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end}

    def part_begin(self):
        self.headers = {}

    def header_field(self, data, start, end):
        self.field += data[start:end]

    def header_value(self, data, start, end):
        self.value += data[start:end]

    def header_end(self):
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def headers_finished(self):
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = params.get(b"filename")
        self.in_file = name is not None and not self.got_file
        if self.in_file:
            self.file_name = os.path.basename(name.decode("utf-8", "replace").replace("\\", "/"))[:512]

    def part_data(self, data, start, end):
        if not self.in_file:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise UploadTooLarge()
        self.digest.update(chunk)
        self.handle.write(chunk)

    def part_end(self):
        if self.in_file:
            self.got_file, self.in_file = True, False


async def receive_upload(request, folder: Path, max_bytes: int) -> Upload:
    """The request's first file part, on disk. UploadTooLarge past ``max_bytes``; BadUpload when the
    body is not multipart form data with a file."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise BadUpload("send the video as multipart/form-data (a file field)")
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".upload-", delete=False)
    receiver = _Receiver(handle, max_bytes)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        handle.close()
        if not receiver.got_file:
            raise BadUpload("no file in the upload: send the video as a multipart file field")
    except BaseException:
        handle.close()
        os.unlink(handle.name)
        raise
    return Upload(Path(handle.name), receiver.digest.hexdigest(), receiver.size, receiver.file_name or "")


def store(upload: Upload) -> str:
    """The upload stored under ``uploads/<sha256>``, its key: moved into DATA_DIR/uploads on local
    disk, or put in the object store (then the local file is removed: a worker on another host
    reads the object). The same bytes uploaded twice are kept once."""
    from shared.storage import open_store, put_once, upload_key

    key, storage = upload_key(upload.sha256), open_store()
    if not storage.remote:
        os.replace(upload.path, storage.root / key)
        return key
    try:
        put_once(key, upload.path)
    finally:
        upload.path.unlink(missing_ok=True)
    return key
