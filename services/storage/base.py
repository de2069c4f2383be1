"""The object-store contract shared by the API and the workers.

Two logical buckets: ``originals`` (uploaded PHI, encrypted at rest) and ``artifacts`` (masked files
and metrics). Keys are opaque random strings chosen by the caller (``new_key``), so no record ID or
file name ever appears in storage paths, logs or access logs of the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, runtime_checkable

BucketName = Literal["originals", "artifacts"]


class StoreError(Exception):
    """The store could not be reached or refused an operation."""


class StoreUnavailable(StoreError):
    """The store could not be reached at all (connection refused or reset, timeout): an outage, not
    an answer about this object. Callers retry later instead of failing the work (the API answers
    503 with Retry-After; a worker puts the job back without counting a delivery)."""


class ObjectNotFound(StoreError):
    pass


@dataclass(frozen=True)
class StoredObject:
    """One listed object: what the orphan sweeper needs (key and age)."""

    key: str
    last_modified: datetime
    size: int


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def new_key() -> str:
    """192 random bits, URL-safe, spread over 256 prefixes (keeps directory fan-out small)."""
    token = secrets.token_hex(24)
    return f"{token[:2]}/{token}"


@runtime_checkable
class ObjectStore(Protocol):
    name: str

    def put_stream(self, bucket: BucketName, key: str, reader: Readable, *, content_type: str) -> None:
        """Store everything ``reader`` yields, reading it incrementally (memory stays bounded).
        If ``reader.read`` raises, nothing is left behind and the exception propagates."""

    def put_file(self, bucket: BucketName, key: str, path: Path, *, content_type: str) -> None: ...

    def get_to_file(self, bucket: BucketName, key: str, path: Path) -> None: ...

    def get_bytes(self, bucket: BucketName, key: str) -> bytes: ...

    def iter_chunks(self, bucket: BucketName, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def open_seekable(self, bucket: BucketName, key: str) -> BinaryIO:
        """A read-only, seekable file object (range reads on S3): lets probes read a video's index
        without downloading the whole file."""

    def size(self, bucket: BucketName, key: str) -> int: ...

    def delete(self, bucket: BucketName, key: str) -> None:
        """Idempotent: deleting a missing object is not an error."""

    def exists(self, bucket: BucketName, key: str) -> bool: ...

    def list_keys(self, bucket: BucketName) -> list[str]:
        """Every key in the bucket (used by tests and admin checks; not on any request path)."""

    def list_objects(self, bucket: BucketName) -> Iterator[StoredObject]:
        """Every object with its last-modified time (the orphan sweeper; never on a request path)."""

    def abort_stale_uploads(self, bucket: BucketName, older_than: datetime) -> list[str]:
        """Abort unfinished writes (S3 multipart uploads, local temp files) started before
        ``older_than``: what an API or store crash mid-upload leaves. Returns their keys."""

    def presign_get(
        self, bucket: BucketName, key: str, *, ttl_s: int, content_type: str, filename: str
    ) -> str | None:
        """A short-lived download URL, or None when the store cannot make one (then stream)."""

    def check(self) -> None:
        """Raise StoreError unless both buckets are reachable (readiness probe)."""

    def ensure_buckets(self) -> None: ...
