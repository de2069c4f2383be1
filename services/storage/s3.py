"""Object store on S3 (SeaweedFS, MinIO, AWS) through the minio SDK.

Originals are written and read with SSE-C (the configured customer key): the store keeps them
encrypted and cannot decrypt them without the key, which lives only in the service's secrets.
(AWS and MinIO accept SSE-C over TLS only; SeaweedFS also accepts it on plain HTTP, which the tests
use on loopback.) Artifacts are de-identified and are served by presigned GET URLs, which SSE-C
objects cannot be.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.error import S3Error
from minio.sse import SseCustomerKey

from services.storage.base import BucketName, ObjectNotFound, Readable, StoreError

NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


class _RangeReader(io.RawIOBase):
    """Seekable read-only view of an object through ranged GETs, with one block of read-ahead, so
    probes (video container index) fetch only the bytes they touch."""

    def __init__(self, store: S3Store, bucket: BucketName, key: str, size: int, block: int = 256 << 10):
        self._store, self._bucket, self._key, self._size, self._block = store, bucket, key, size, block
        self._pos = 0
        self._buf_start = 0
        self._buf = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._size + offset
        self._pos = max(0, self._pos)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        want = len(view)
        if want == 0 or self._pos >= self._size:
            return 0
        if not (self._buf_start <= self._pos < self._buf_start + len(self._buf)):
            length = min(max(self._block, want), self._size - self._pos)
            self._buf = self._store.read_range(self._bucket, self._key, self._pos, length)
            self._buf_start = self._pos
        off = self._pos - self._buf_start
        chunk = self._buf[off : off + want]
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class S3Store:
    name = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        *,
        secure: bool,
        region: str | None,
        buckets: dict[BucketName, str],
        sse_c_key_b64: str,
        public_endpoint: str | None = None,
        part_size: int = 8 << 20,
        create_buckets: bool = True,
    ) -> None:
        key = base64.b64decode(sse_c_key_b64)
        if len(key) != 32:
            raise ValueError("DMASK_SSE_C_KEY must be base64 of exactly 32 bytes")
        self._ssec = SseCustomerKey(key)
        self.buckets = buckets
        self.region = region or "us-east-1"
        self.part_size = part_size
        self.create_buckets = create_buckets
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=60),
            maxsize=20,
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=self.region,
            http_client=http,
        )
        # Presigning is pure computation with the region known; a second client carries the public
        # host name so the signature matches what the downloading client will send.
        self.presign_client = Minio(
            public_endpoint or endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=self.region,
        )

    def _b(self, bucket: BucketName) -> str:
        return self.buckets[bucket]

    def _sse(self, bucket: BucketName) -> SseCustomerKey | None:
        return self._ssec if bucket == "originals" else None

    def _wrap(self, exc: Exception, key: str) -> StoreError:
        if isinstance(exc, S3Error) and exc.code in NOT_FOUND_CODES:
            return ObjectNotFound(key)
        return StoreError(f"{type(exc).__name__}: {getattr(exc, 'code', '') or exc}")

    def ensure_buckets(self) -> None:
        if not self.create_buckets:
            return
        for bucket in self.buckets:
            name = self._b(bucket)
            try:
                if not self.client.bucket_exists(name):
                    self.client.make_bucket(name)
            except S3Error as exc:
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise self._wrap(exc, name) from exc

    def check(self) -> None:
        try:
            for bucket in self.buckets:
                if not self.client.bucket_exists(self._b(bucket)):
                    raise StoreError(f"bucket {bucket} missing")
        except StoreError:
            raise
        except Exception as exc:
            raise self._wrap(exc, "") from exc

    def put_stream(self, bucket: BucketName, key: str, reader: Readable, *, content_type: str) -> None:
        try:
            self.client.put_object(
                self._b(bucket),
                key,
                cast(BinaryIO, reader),
                length=-1,
                part_size=self.part_size,
                content_type=content_type,
                sse=self._sse(bucket),
                num_parallel_uploads=1,
            )
        except S3Error as exc:
            raise self._wrap(exc, key) from exc

    def put_file(self, bucket: BucketName, key: str, path: Path, *, content_type: str) -> None:
        try:
            self.client.fput_object(
                self._b(bucket),
                key,
                str(path),
                content_type=content_type,
                sse=self._sse(bucket),
                part_size=self.part_size,
                num_parallel_uploads=1,
            )
        except S3Error as exc:
            raise self._wrap(exc, key) from exc

    def _get(self, bucket: BucketName, key: str, offset: int = 0, length: int | None = None) -> Any:
        try:
            return self.client.get_object(
                self._b(bucket), key, offset=offset, length=length or 0, ssec=self._sse(bucket)
            )
        except S3Error as exc:
            raise self._wrap(exc, key) from exc

    def iter_chunks(self, bucket: BucketName, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        resp = self._get(bucket, key)
        try:
            yield from resp.stream(chunk_size)
        finally:
            resp.close()
            resp.release_conn()

    def get_to_file(self, bucket: BucketName, key: str, path: Path) -> None:
        with open(path, "wb") as out:
            for chunk in self.iter_chunks(bucket, key):
                out.write(chunk)

    def get_bytes(self, bucket: BucketName, key: str) -> bytes:
        return b"".join(self.iter_chunks(bucket, key))

    def read_range(self, bucket: BucketName, key: str, offset: int, length: int) -> bytes:
        resp = self._get(bucket, key, offset, length)
        try:
            return cast(bytes, resp.read())
        finally:
            resp.close()
            resp.release_conn()

    def size(self, bucket: BucketName, key: str) -> int:
        try:
            st = self.client.stat_object(self._b(bucket), key, ssec=self._sse(bucket))
        except S3Error as exc:
            raise self._wrap(exc, key) from exc
        return int(st.size or 0)

    def open_seekable(self, bucket: BucketName, key: str) -> BinaryIO:
        return cast(BinaryIO, io.BufferedReader(_RangeReader(self, bucket, key, self.size(bucket, key))))

    def delete(self, bucket: BucketName, key: str) -> None:
        try:
            self.client.remove_object(self._b(bucket), key)
        except S3Error as exc:
            if exc.code not in NOT_FOUND_CODES:
                raise self._wrap(exc, key) from exc

    def exists(self, bucket: BucketName, key: str) -> bool:
        try:
            self.size(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list_keys(self, bucket: BucketName) -> list[str]:
        try:
            return sorted(
                o.object_name
                for o in self.client.list_objects(self._b(bucket), recursive=True)
                if o.object_name
            )
        except S3Error as exc:
            raise self._wrap(exc, "") from exc

    def presign_get(
        self, bucket: BucketName, key: str, *, ttl_s: int, content_type: str, filename: str
    ) -> str | None:
        if bucket == "originals":
            return None  # SSE-C objects need the key in headers: never hand those out
        return self.presign_client.presigned_get_object(
            self._b(bucket),
            key,
            expires=timedelta(seconds=ttl_s),
            response_headers={
                "response-content-type": content_type,
                "response-content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            },
        )
