"""Object store on S3 (SeaweedFS, MinIO, AWS) through the minio SDK.

Originals are written and read with SSE-C (the configured customer key): the store keeps them
encrypted and cannot decrypt them without the key, which lives only in the service's secrets.
(AWS and MinIO accept SSE-C over TLS only; SeaweedFS also accepts it on plain HTTP, which the tests
use on loopback.) Artifacts are de-identified and are served by presigned GET URLs, which SSE-C
objects cannot be.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error, ServerError
from minio.sse import SseCustomerKey

from services.storage.base import (
    BucketName,
    ObjectNotFound,
    Readable,
    StoredObject,
    StoreError,
    StoreUnavailable,
)
from services.storage.breaker import CircuitBreaker

T = TypeVar("T")

# What the minio SDK raises when the server cannot be reached or answers like a broken proxy, as
# opposed to an S3 error answer about the request. These become StoreUnavailable (an outage).
_UNREACHABLE: tuple[type[Exception], ...] = (urllib3.exceptions.HTTPError, OSError, ServerError)
_SDK_ERRORS: tuple[type[Exception], ...] = (MinioException, ValueError, *_UNREACHABLE)

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


class _TaggedReader:
    """Remembers an exception raised by the wrapped reader, so put_stream can tell a failing source
    (client disconnected, upload refused) from a failing store."""

    def __init__(self, reader: Readable) -> None:
        self.reader = reader
        self.error: BaseException | None = None

    def read(self, n: int = -1, /) -> bytes:
        try:
            return self.reader.read(n)
        except BaseException as exc:
            self.error = exc
            raise


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
        ca_bundle: Path | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        key = base64.b64decode(sse_c_key_b64)
        if len(key) != 32:
            raise ValueError("DMASK_SSE_C_KEY must be base64 of exactly 32 bytes")
        self._ssec = SseCustomerKey(key)
        self.buckets = buckets
        self.region = region or "us-east-1"
        self.part_size = part_size
        self.create_buckets = create_buckets
        self.breaker = breaker or CircuitBreaker()
        # Few, quick retries: a store that refuses connections is down, and the circuit breaker
        # (not a retry loop per request) decides when to try it again.
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": str(ca_bundle)} if ca_bundle else {}
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2, read=60),
            maxsize=20,
            retries=urllib3.Retry(
                total=2, connect=1, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]
            ),
            **tls,
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

    def _wrap(self, exc: BaseException, key: str) -> StoreError:
        """Every SDK failure becomes a StoreError, so callers never see urllib3/minio internals (an
        unwrapped connection error used to reach the API's catch-all and answer 500). Messages hold
        the exception type and S3 code only: object URLs are not repeated into logs."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, S3Error):
            if exc.code in NOT_FOUND_CODES:
                return ObjectNotFound(key)
            return StoreError(f"S3Error: {exc.code}")
        if isinstance(exc, _UNREACHABLE):
            return StoreUnavailable(f"object store unreachable ({type(exc).__name__})")
        return StoreError(f"{type(exc).__name__}")

    def _call(self, fn: Callable[[], T], key: str) -> T:
        """Every store call goes through here (or ``_guarded``): the circuit breaker sees each
        outcome, and SDK errors become StoreErrors."""
        self.breaker.before_call()
        try:
            result = fn()
        except _SDK_ERRORS as exc:
            raise self._outcome(self._wrap(exc, key)) from exc
        except BaseException:
            self.breaker.abandon_probe()
            raise
        self.breaker.record_success()
        return result

    def _outcome(self, err: StoreError) -> StoreError:
        """Tell the breaker what an error says about the store: unreachable, or up (any answer)."""
        if isinstance(err, StoreUnavailable):
            self.breaker.record_failure(str(err))
        else:
            self.breaker.record_success()
        return err

    def ensure_buckets(self) -> None:
        if not self.create_buckets:
            return
        for bucket in self.buckets:
            name = self._b(bucket)
            try:
                if not self._call(partial(self.client.bucket_exists, name), name):
                    self._call(partial(self.client.make_bucket, name), name)
            except StoreError as exc:
                cause = exc.__cause__
                if not (
                    isinstance(cause, S3Error)
                    and cause.code in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
                ):
                    raise

    def check(self) -> None:
        for bucket in self.buckets:
            name = self._b(bucket)
            if not self._call(partial(self.client.bucket_exists, name), name):
                raise StoreError(f"bucket {bucket} missing")

    def put_stream(self, bucket: BucketName, key: str, reader: Readable, *, content_type: str) -> None:
        source = _TaggedReader(reader)
        self.breaker.before_call()
        try:
            self.client.put_object(
                self._b(bucket),
                key,
                cast(BinaryIO, source),
                length=-1,
                part_size=self.part_size,
                content_type=content_type,
                sse=self._sse(bucket),
                num_parallel_uploads=1,
            )
        except BaseException as exc:
            # The reader's own failure (client gone, upload refused) propagates as it is, even when
            # minio's abort of the multipart upload failed on top of it; a store failure is wrapped.
            if source.error is not None:
                self.breaker.abandon_probe()
                raise source.error from None
            if isinstance(exc, _SDK_ERRORS):
                raise self._outcome(self._wrap(exc, key)) from exc
            self.breaker.abandon_probe()
            raise
        self.breaker.record_success()

    def put_file(self, bucket: BucketName, key: str, path: Path, *, content_type: str) -> None:
        self._call(
            lambda: self.client.fput_object(
                self._b(bucket),
                key,
                str(path),
                content_type=content_type,
                sse=self._sse(bucket),
                part_size=self.part_size,
                num_parallel_uploads=1,
            ),
            key,
        )

    def _get(self, bucket: BucketName, key: str, offset: int = 0, length: int | None = None) -> Any:
        return self._call(
            lambda: self.client.get_object(
                self._b(bucket), key, offset=offset, length=length or 0, ssec=self._sse(bucket)
            ),
            key,
        )

    def iter_chunks(self, bucket: BucketName, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        resp = self._get(bucket, key)
        try:
            stream = resp.stream(chunk_size)
            while True:
                chunk = self._call(lambda: next(stream, None), key)
                if chunk is None:
                    return
                yield chunk
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
            return cast(bytes, self._call(resp.read, key))
        finally:
            resp.close()
            resp.release_conn()

    def size(self, bucket: BucketName, key: str) -> int:
        st = self._call(lambda: self.client.stat_object(self._b(bucket), key, ssec=self._sse(bucket)), key)
        return int(st.size or 0)

    def open_seekable(self, bucket: BucketName, key: str) -> BinaryIO:
        return cast(BinaryIO, io.BufferedReader(_RangeReader(self, bucket, key, self.size(bucket, key))))

    def delete(self, bucket: BucketName, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):
            self._call(lambda: self.client.remove_object(self._b(bucket), key), key)

    def exists(self, bucket: BucketName, key: str) -> bool:
        try:
            self.size(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list_keys(self, bucket: BucketName) -> list[str]:
        return sorted(o.key for o in self.list_objects(bucket))

    def list_objects(self, bucket: BucketName) -> Iterator[StoredObject]:
        listing = self._call(lambda: iter(self.client.list_objects(self._b(bucket), recursive=True)), "")
        while True:
            obj = self._call(lambda: next(listing, None), "")
            if obj is None:
                return
            if obj.object_name and not obj.is_dir:
                modified = obj.last_modified or datetime.fromtimestamp(0).astimezone()
                yield StoredObject(obj.object_name, modified, int(obj.size or 0))

    def _list_uploads(self, name: str, key_marker: str | None, upload_marker: str | None) -> Any:
        return self.client._list_multipart_uploads(  # noqa: SLF001 - minio-py has no public call
            name, key_marker=key_marker, upload_id_marker=upload_marker, max_uploads=1000
        )

    def abort_stale_uploads(self, bucket: BucketName, older_than: datetime) -> list[str]:
        """Unfinished multipart uploads (an API killed mid-upload, or the store down when the API
        tried to abort) hold parts the bucket listing does not show; abort those started before
        ``older_than``. Uses the SDK's low-level calls: minio-py has no public wrapper for them."""
        name = self._b(bucket)
        aborted: list[str] = []
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            page = self._call(partial(self._list_uploads, name, key_marker, upload_marker), "")
            for up in page.uploads:
                started = up.initiated_time
                if up.object_name and up.upload_id and (started is None or started < older_than):
                    obj, uid = up.object_name, up.upload_id
                    with contextlib.suppress(ObjectNotFound):
                        self._call(partial(self.client._abort_multipart_upload, name, obj, uid), obj)
                    aborted.append(obj)
            if not page.is_truncated or not page.next_key_marker:
                return aborted
            key_marker = page.next_key_marker
            upload_marker = getattr(page, "next_upload_id_marker", None)

    def presign_get(
        self, bucket: BucketName, key: str, *, ttl_s: int, content_type: str, filename: str
    ) -> str | None:
        if bucket == "originals":
            return None  # SSE-C objects need the key in headers: never hand those out
        # Pure computation (the region is known): not a store call, so not behind the circuit
        # breaker; a link handed out during an outage works once the store is back.
        try:
            return self.presign_client.presigned_get_object(
                self._b(bucket),
                key,
                expires=timedelta(seconds=ttl_s),
                response_headers={
                    "response-content-type": content_type,
                    "response-content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                },
            )
        except _SDK_ERRORS as exc:
            raise self._wrap(exc, key) from exc
