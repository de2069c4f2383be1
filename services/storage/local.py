"""Object store on a local folder: the embedded default (one machine, no S3 needed).

Writes go to a temporary file in the same folder and are renamed into place when complete, so a
failed or aborted upload never leaves a partial object behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from services.storage.base import BucketName, ObjectNotFound, Readable, StoredObject, StoreError

CHUNK = 1 << 20


class LocalFolderStore:
    name = "local"

    def __init__(self, root: Path, buckets: dict[BucketName, str]) -> None:
        self.root = root.resolve()
        self.buckets = buckets

    def _dir(self, bucket: BucketName) -> Path:
        return self.root / self.buckets[bucket]

    def _path(self, bucket: BucketName, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise StoreError("invalid object key")
        return self._dir(bucket) / key

    def ensure_buckets(self) -> None:
        for bucket in self.buckets:
            self._dir(bucket).mkdir(parents=True, exist_ok=True)
            (self._dir(bucket) / ".tmp").mkdir(exist_ok=True)

    def check(self) -> None:
        for bucket in self.buckets:
            d = self._dir(bucket)
            if not d.is_dir() or not os.access(d, os.W_OK):
                raise StoreError(f"bucket folder {bucket} not writable")

    def put_stream(self, bucket: BucketName, key: str, reader: Readable, *, content_type: str) -> None:
        dest = self._path(bucket, key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = self._dir(bucket) / ".tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmpdir)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_file(self, bucket: BucketName, key: str, path: Path, *, content_type: str) -> None:
        with open(path, "rb") as fh:
            self.put_stream(bucket, key, fh, content_type=content_type)

    def get_to_file(self, bucket: BucketName, key: str, path: Path) -> None:
        src = self._path(bucket, key)
        if not src.exists():
            raise ObjectNotFound(key)
        shutil.copyfile(src, path)

    def get_bytes(self, bucket: BucketName, key: str) -> bytes:
        src = self._path(bucket, key)
        if not src.exists():
            raise ObjectNotFound(key)
        return src.read_bytes()

    def iter_chunks(self, bucket: BucketName, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        src = self._path(bucket, key)
        if not src.exists():
            raise ObjectNotFound(key)
        with open(src, "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def open_seekable(self, bucket: BucketName, key: str) -> BinaryIO:
        src = self._path(bucket, key)
        if not src.exists():
            raise ObjectNotFound(key)
        return open(src, "rb")

    def size(self, bucket: BucketName, key: str) -> int:
        src = self._path(bucket, key)
        if not src.exists():
            raise ObjectNotFound(key)
        return src.stat().st_size

    def delete(self, bucket: BucketName, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(bucket, key).unlink()

    def exists(self, bucket: BucketName, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def list_keys(self, bucket: BucketName) -> list[str]:
        return sorted(o.key for o in self.list_objects(bucket))

    def list_objects(self, bucket: BucketName) -> Iterator[StoredObject]:
        base = self._dir(bucket)
        if not base.exists():
            return
        for p in base.rglob("*"):
            rel = p.relative_to(base).as_posix()
            if rel.startswith(".tmp/") or not p.is_file():
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            yield StoredObject(rel, datetime.fromtimestamp(st.st_mtime, UTC), st.st_size)

    def abort_stale_uploads(self, bucket: BucketName, older_than: datetime) -> list[str]:
        """Temp files of writes that never finished (the process died before the rename)."""
        tmpdir = self._dir(bucket) / ".tmp"
        removed: list[str] = []
        if not tmpdir.is_dir():
            return removed
        for p in tmpdir.iterdir():
            try:
                if datetime.fromtimestamp(p.stat().st_mtime, UTC) < older_than:
                    p.unlink()
                    removed.append(f".tmp/{p.name}")
            except FileNotFoundError:
                continue
        return removed

    def presign_get(
        self, bucket: BucketName, key: str, *, ttl_s: int, content_type: str, filename: str
    ) -> str | None:
        return None
