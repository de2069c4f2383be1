"""Ingest: stream an upload into object storage under a byte cap, sniff and cap-check it, then
record the media, its job and the audit events in one transaction.

The request body never sits in memory: chunks go through a small bounded pipe to a thread that
writes them to the store (S3 multipart parts of ``s3_part_size_mb``), so the API's memory stays
flat whatever the upload size. Whenever an upload is refused part-way (cap, type, caps, client gone),
the partial object is removed (an S3 multipart upload is aborted), so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import queue
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.artifacts.models import Artifact
from services.audit import service as audit
from services.auth.service import Principal
from services.jobs.models import Job, JobStatus
from services.media import inspect
from services.media.models import Media
from services.media.schemas import MediaMetadata
from services.problems import Problem, storage_unavailable
from services.settings import Settings
from services.storage import ObjectStore, StoreError, StoreUnavailable, new_key

log = logging.getLogger("dmask.ingest")

RECORD_ID_RE = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
DRAIN_LIMIT = 64 << 20  # read (and discard) up to this much after refusing, so clients see the answer
META_LIMIT = 64 << 10
PIPE_DEPTH = 32
PART_HEADER_LIMIT = 8 << 10  # one multipart part header line (name + value)
PART_HEADERS_MAX = 16  # header lines per part
PARTS_MAX = 8  # parts per body: 'file', 'metadata' and a few ignored ones


def validate_record_id(record_id: str) -> str:
    if not RECORD_ID_RE.match(record_id):
        raise Problem(
            422,
            "record_id must be 1-64 characters of A-Z a-z 0-9 . _ - (and not '.' or '..').",
            slug="invalid-record-id",
            title="Invalid record ID",
        )
    return record_id


# --- body streaming -------------------------------------------------------------------------------


class _Abort:
    pass


_EOF = b""


class UploadAborted(Exception):
    pass


class ChunkPipe:
    """Bounded hand-over of chunks from the event loop (producer) to a store thread (consumer)."""

    def __init__(self, depth: int = PIPE_DEPTH) -> None:
        self._q: queue.Queue[bytes | _Abort] = queue.Queue(depth)
        self._pending = b""
        self._eof = False
        self.aborted = False

    async def put(self, chunk: bytes, consumer_alive: Callable[[], bool]) -> None:
        while True:
            try:
                self._q.put_nowait(chunk)
                return
            except queue.Full:
                if not consumer_alive():
                    raise UploadAborted("store writer stopped") from None
                await asyncio.sleep(0.002)

    def close(self) -> None:
        """End of data (blocks only while the consumer drains a full pipe)."""
        while True:
            try:
                self._q.put(_EOF, timeout=0.5)
                return
            except queue.Full:
                if self.aborted:
                    return

    def abort(self) -> None:
        self.aborted = True
        with contextlib.suppress(queue.Full):
            self._q.put_nowait(_Abort())

    # consumer side (store thread)
    def read(self, n: int = -1, /) -> bytes:
        out = bytearray(self._pending)
        self._pending = b""
        while (n < 0 or len(out) < n) and not self._eof:
            if self.aborted:
                raise UploadAborted("upload aborted")
            try:
                item = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(item, _Abort):
                raise UploadAborted("upload aborted")
            if item == _EOF:
                self._eof = True
                break
            out += item
        if n >= 0 and len(out) > n:
            self._pending = bytes(out[n:])
            del out[n:]
        return bytes(out)


@dataclass
class BodyState:
    """Tracks the raw ASGI body so refusals can drain what the client is still sending."""

    done: bool = False
    raw_bytes: int = 0


async def raw_body(request: Request, state: BodyState) -> AsyncIterator[bytes]:
    while not state.done:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            state.done = True
            raise UploadAborted("client disconnected")
        chunk = message.get("body", b"")
        state.raw_bytes += len(chunk)
        if not message.get("more_body", False):
            state.done = True
        if chunk:
            yield chunk


async def drain(request: Request, state: BodyState, limit: int = DRAIN_LIMIT) -> bool:
    """Discard the rest of the body (up to ``limit``); True if the client finished sending."""
    read = 0
    while not state.done and read <= limit:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            state.done = True
            return False
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            state.done = True
    return state.done


class MultipartFile:
    """Streams the ``file`` part of a multipart/form-data body and collects the small ``metadata``
    part, without spooling anything to disk."""

    def __init__(self, request: Request, state: BodyState, boundary: bytes, max_body: int) -> None:
        self.request, self.state = request, state
        self.max_body = max_body
        self.parts = 0
        self.metadata_raw: bytes | None = None
        self.file_parts = 0
        self._events: list[bytes] = []
        self._name: str | None = None
        self._hfield = b""
        self._hvalue = b""
        self._headers: dict[bytes, bytes] = {}
        self._meta = bytearray()
        self._other = 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    # Part headers are accumulated in memory, so they are capped (size, count, parts): a chunked
    # body whose part header never ends would otherwise grow the API's memory without bound.
    def _part_begin(self) -> None:
        self._headers, self._name = {}, None
        self.parts += 1
        if self.parts > PARTS_MAX:
            raise Problem(422, "Too many parts in the multipart body.", slug="bad-multipart")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hfield += data[start:end]
        self._check_header()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._hfield) + len(self._hvalue) > PART_HEADER_LIMIT:
            raise Problem(413, "A multipart part header is too large.", slug="multipart-header-too-large")

    def _header_end(self) -> None:
        self._headers[self._hfield.strip().lower()] = self._hvalue.strip()
        self._hfield, self._hvalue = b"", b""
        if len(self._headers) > PART_HEADERS_MAX:
            raise Problem(413, "A multipart part has too many headers.", slug="multipart-header-too-large")

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("latin-1")
        self._name = name
        if name == "file":
            self.file_parts += 1
            if self.file_parts > 1:
                raise Problem(422, "Send exactly one part named 'file'.", slug="bad-multipart")
        elif name == "metadata" and self.metadata_raw is not None:
            raise Problem(422, "Send at most one 'metadata' part.", slug="bad-multipart")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name == "file":
            self._events.append(bytes(data[start:end]))
        elif self._name == "metadata":
            self._meta += data[start:end]
            if len(self._meta) > META_LIMIT:
                raise Problem(413, "The metadata part is too large.", slug="metadata-too-large")
        else:
            self._other += end - start
            if self._other > META_LIMIT:
                raise Problem(
                    422,
                    "Unexpected form parts (send 'file' and optionally 'metadata').",
                    slug="bad-multipart",
                )

    def _part_end(self) -> None:
        if self._name == "metadata":
            self.metadata_raw = bytes(self._meta)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for raw in raw_body(self.request, self.state):
            if self.state.raw_bytes > self.max_body:  # preamble, epilogue and ignored parts count too
                raise Problem(413, "The multipart body exceeds the upload limit.", slug="upload-too-large")
            try:
                self.parser.write(raw)
            except Problem:
                raise
            except Exception as exc:
                raise Problem(400, "Malformed multipart body.", slug="bad-multipart") from exc
            for piece in self._events:
                yield piece
            self._events.clear()
        try:
            self.parser.finalize()
        except Exception as exc:
            raise Problem(400, "Malformed multipart body.", slug="bad-multipart") from exc
        if self.file_parts == 0:
            raise Problem(422, "The multipart body has no part named 'file'.", slug="bad-multipart")


def parse_metadata(raw: bytes | str | None) -> MediaMetadata:
    if raw is None or (isinstance(raw, bytes | str) and not raw.strip()):
        return MediaMetadata()
    try:
        return MediaMetadata.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Problem(
            422, "The metadata is not valid.", slug="validation", title="Invalid request", errors=errors
        ) from None


@dataclass
class Received:
    key: str | None
    size: int
    sha256: str
    sniffed: inspect.Sniffed
    metadata: MediaMetadata
    head: bytes = field(repr=False)


def too_large(settings: Settings) -> Problem:
    return Problem(
        413,
        f"The upload exceeds the limit of {settings.max_upload_bytes} bytes.",
        slug="upload-too-large",
        max_bytes=settings.max_upload_bytes,
    )


def unsupported(sniffed: inspect.Sniffed) -> Problem:
    return Problem(
        415,
        f"Content type {sniffed.mime} is not accepted; send a photo (JPEG, PNG, WebP, HEIC, AVIF, TIFF), "
        "a video (MP4, MOV, WebM, MKV, AVI, 3GP) or DICOM.",
        slug="unsupported-media-type",
        detected=sniffed.mime,
    )


def _check_photo(settings: Settings, dims: tuple[int, int, int]) -> None:
    width, height, frames = dims
    if frames > 1:
        raise Problem(422, "Animated or multi-page images are not accepted.", slug="multi-frame-image")
    if width * height > settings.max_pixels:
        raise Problem(
            413,
            f"The image has {width * height} pixels; the limit is {settings.max_pixels}.",
            slug="too-many-pixels",
            max_pixels=settings.max_pixels,
        )


def _check_video(settings: Settings, info: inspect.VideoInfo) -> None:
    if info.width * info.height > settings.max_pixels:
        raise Problem(
            413,
            "The video frame size exceeds the pixel limit.",
            slug="too-many-pixels",
            max_pixels=settings.max_pixels,
        )
    if info.duration_s is None:
        raise Problem(
            422, "The video's duration cannot be determined from its header.", slug="unreadable-media"
        )
    if info.duration_s > settings.max_video_seconds:
        raise Problem(
            413,
            f"The video lasts {info.duration_s:.0f} s; the limit is {settings.max_video_seconds:.0f} s.",
            slug="video-too-long",
            max_seconds=settings.max_video_seconds,
        )


async def receive(
    request: Request, settings: Settings, store: ObjectStore, executor: Executor, *, keep: bool
) -> Received:
    """Read the upload (raw or multipart), storing it in the originals bucket when ``keep``."""
    state = BodyState()
    ctype = request.headers.get("content-type", "application/octet-stream")
    mime, params = parse_options_header(ctype)
    multipart: MultipartFile | None = None
    overhead = 0
    if mime == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise Problem(400, "multipart/form-data without a boundary.", slug="bad-multipart")
        overhead = META_LIMIT * 2 + (64 << 10) + PARTS_MAX * PART_HEADERS_MAX * PART_HEADER_LIMIT
        multipart = MultipartFile(request, state, boundary, settings.max_upload_bytes + overhead)
        source = multipart.chunks()
    else:
        source = raw_body(request, state)

    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + overhead:
        await drain(request, state)
        raise too_large(settings)

    def metadata() -> MediaMetadata:
        return parse_metadata(
            multipart.metadata_raw if multipart is not None else request.headers.get("x-dmask-metadata")
        )

    async def refused() -> None:
        await drain(request, state)

    return await store_stream(
        source, settings, store, executor, keep=keep, metadata=metadata, on_refused=refused
    )


async def store_stream(
    source: AsyncIterator[bytes],
    settings: Settings,
    store: ObjectStore,
    executor: Executor,
    *,
    keep: bool,
    metadata: Callable[[], MediaMetadata] = MediaMetadata,
    on_refused: Callable[[], Awaitable[object]] | None = None,
) -> Received:
    """Stream ``source`` under the byte cap into the originals bucket (when ``keep``), sniffing and
    cap-checking it on the way; ``on_refused`` runs after a refusal (to drain the client's body)."""
    key = new_key() if keep else None
    pipe = ChunkPipe()
    loop = asyncio.get_running_loop()
    writer: asyncio.Future[None] | None = None
    if key is not None:
        writer = loop.run_in_executor(
            executor,
            lambda: store.put_stream("originals", key, pipe, content_type="application/octet-stream"),
        )

    def writer_alive() -> bool:
        return writer is None or not writer.done()

    hasher = hashlib.sha256()
    head = bytearray()
    size = 0
    sniffed: inspect.Sniffed | None = None
    photo_checked = False
    try:
        async for chunk in source:
            size += len(chunk)
            if size > settings.max_upload_bytes:
                raise too_large(settings)
            hasher.update(chunk)
            if len(head) < inspect.HEAD_BYTES:
                head += chunk[: inspect.HEAD_BYTES - len(head)]
            if sniffed is None and len(head) >= inspect.SNIFF_BYTES:
                sniffed = inspect.sniff_head(bytes(head))
                if not sniffed.supported:
                    raise unsupported(sniffed)
            if (
                sniffed is not None
                and sniffed.kind == "photo"
                and not photo_checked
                and len(head) >= inspect.HEAD_BYTES
            ):
                dims = inspect.photo_size(bytes(head), sniffed.media_type)
                photo_checked = dims is not None
                if dims is not None:
                    _check_photo(settings, dims)
            if writer is not None:
                await pipe.put(chunk, writer_alive)
        if sniffed is None:
            sniffed = inspect.sniff_head(bytes(head))
            if not sniffed.supported:
                raise unsupported(sniffed)
        if sniffed.kind == "photo" and not photo_checked and len(head) < inspect.HEAD_BYTES:
            dims = inspect.photo_size(bytes(head), sniffed.media_type)
            if dims is None:
                raise Problem(422, "The image header is corrupt or truncated.", slug="unreadable-media")
            photo_checked = True
            _check_photo(settings, dims)
        meta = metadata()
        if writer is not None:
            await loop.run_in_executor(executor, pipe.close)
            await writer
        if key is not None and (sniffed.kind == "video" or (sniffed.kind == "photo" and not photo_checked)):
            await loop.run_in_executor(executor, _probe_stored, settings, store, key, sniffed)
    except BaseException as exc:
        pipe.abort()
        writer_error: BaseException | None = None
        if writer is not None:
            try:
                await writer
            except BaseException as failed:
                writer_error = failed
        if key is not None:
            await loop.run_in_executor(executor, discard_original, store, key)
        if on_refused is not None and isinstance(exc, Problem | UploadAborted):
            with contextlib.suppress(Exception):
                await on_refused()
        if isinstance(exc, inspect.ProbeError):
            raise Problem(422, str(exc), slug="unreadable-media") from None
        # The store failing is noticed either by the writer thread (StoreError) or first by the
        # body loop, whose hand-over to the dead writer fails (UploadAborted): both are an outage
        # (503 + Retry-After), never a 500.
        if isinstance(exc, StoreError) or (
            isinstance(exc, UploadAborted) and isinstance(writer_error, StoreError)
        ):
            failure = exc if isinstance(exc, StoreError) else writer_error
            # An outage is logged once per state change by the store's circuit breaker, not here.
            level = logging.DEBUG if isinstance(failure, StoreUnavailable) else logging.ERROR
            log.log(level, "object store failed during upload: %s", failure)
            raise storage_unavailable() from None
        if isinstance(exc, UploadAborted) and not isinstance(writer_error, UploadAborted | None):
            raise writer_error from exc  # the writer thread broke for another reason: a real 500
        if isinstance(exc, UploadAborted):
            # The client went away mid-body: nothing is kept; the answer is for the log and metrics
            # (a 4xx, since nobody is left to read it and the server did nothing wrong).
            raise Problem(
                400, "The upload was interrupted before it was complete.", slug="upload-interrupted"
            ) from None
        raise
    return Received(key, size, hasher.hexdigest(), sniffed, meta, bytes(head))


def discard_original(store: ObjectStore, key: str) -> None:
    """Delete an original the upload will not keep. Never raises: when the store is down the
    refusal must still go out (as 503, not as the delete's error), and the object or unfinished
    multipart upload left behind is removed by the orphan sweeper once its grace period is over."""
    try:
        store.delete("originals", key)
    except Exception as exc:
        log.warning("refused upload's object left to the orphan sweeper: %s", type(exc).__name__)


def _probe_stored(settings: Settings, store: ObjectStore, key: str, sniffed: inspect.Sniffed) -> None:
    """Cap checks that need more than the head: a video's index may sit at the end of the file."""
    with store.open_seekable("originals", key) as fh:
        if sniffed.kind == "video":
            _check_video(settings, inspect.video_info(fh))
        else:
            dims = inspect.photo_size(fh, sniffed.media_type)
            if dims is None:
                raise inspect.ProbeError("corrupt image header")
            _check_photo(settings, dims)


# --- database side --------------------------------------------------------------------------------


def fingerprint(record_id: str, meta: MediaMetadata, sha256: str) -> str:
    blob = json.dumps(
        {"record_id": record_id, "metadata": meta.model_dump(mode="json"), "sha256": sha256},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def find_idempotent(session: Session, client_id: str, key: str) -> tuple[Media, Job] | None:
    media = session.execute(
        select(Media).where(Media.client_id == client_id, Media.idempotency_key == key)
    ).scalar_one_or_none()
    if media is None:
        return None
    job = session.execute(select(Job).where(Job.media_id == media.id)).scalars().first()
    assert job is not None
    return media, job


@dataclass
class Accepted:
    media: Media
    job: Job
    replayed: bool

    @property
    def to_dispatch(self) -> bool:
        """Send the job to the broker: a new one, or a replayed one still queued (its first answer
        may have been lost before it was sent; a duplicate message is harmless, claims are guarded)."""
        return not self.replayed or self.job.status == JobStatus.queued


def record_upload(
    session: Session,
    ctx: audit.AuditContext,
    principal: Principal,
    record_id: str,
    received: Received,
    idem_key: str | None,
) -> Accepted:
    """Insert media + job + audit events in one transaction (the caller commits)."""
    assert received.key is not None
    fp = fingerprint(record_id, received.metadata, received.sha256)
    media = Media(
        id=str(uuid.uuid4()),
        record_id=record_id,
        client_id=principal.client_id,
        kind=received.sniffed.kind,
        mime_type=received.sniffed.mime,
        size_bytes=received.size,
        sha256=received.sha256,
        original_key=received.key,
        meta=received.metadata.model_dump(mode="json", exclude_none=True),
        idempotency_key=idem_key,
        request_fingerprint=fp,
    )
    job = Job(
        id=str(uuid.uuid4()),
        media_id=media.id,
        record_id=record_id,
        client_id=principal.client_id,
        kind=media.kind,
        status=JobStatus.queued,
        progress=0.0,
        deliveries=0,
    )
    session.add(media)
    session.flush()
    session.add(job)
    session.flush()
    ids: dict[str, Any] = {"record_id": record_id, "media_id": media.id, "job_id": job.id}
    audit.append(
        session,
        ctx,
        "media.upload",
        **ids,
        detail={
            "kind": media.kind,
            "mime_type": media.mime_type,
            "size_bytes": media.size_bytes,
            "sha256": media.sha256,
            "idempotency_key": bool(idem_key),
        },
    )
    audit.append(session, ctx, "job.queued", **ids)
    return Accepted(media, job, False)


def replay_or_conflict(
    session: Session,
    ctx: audit.AuditContext,
    principal: Principal,
    record_id: str,
    idem_key: str,
    metadata: MediaMetadata,
    sha256: str,
) -> Accepted:
    found = find_idempotent(session, principal.client_id, idem_key)
    assert found is not None
    media, job = found
    ids: dict[str, Any] = {"record_id": record_id, "media_id": media.id, "job_id": job.id}
    if media.request_fingerprint != fingerprint(record_id, metadata, sha256):
        audit.append(
            session,
            ctx,
            "media.upload",
            audit.Outcome.rejected,
            record_id=record_id,
            detail={"status": 422, "reason": "idempotency key reused with a different request"},
        )
        session.commit()
        raise Problem(
            422,
            "This Idempotency-Key was already used with a different request.",
            slug="idempotency-key-reused",
        )
    audit.append(session, ctx, "media.upload.replay", **ids)
    return Accepted(media, job, True)


def audit_rejection(
    settings: Settings, ctx: audit.AuditContext, record_id: str | None, problem: Problem
) -> None:
    from services.db import session_scope

    try:
        with session_scope(settings) as session:
            audit.append(
                session,
                ctx,
                "media.upload",
                audit.Outcome.rejected,
                record_id=record_id,
                detail={"status": problem.status, "reason": problem.slug or "rejected"},
            )
    except Exception as exc:
        log.error("could not audit a rejected upload: %s", type(exc).__name__)


async def ingest(
    request: Request,
    record_id: str,
    principal: Principal,
    ctx: audit.AuditContext,
    settings: Settings,
    store: ObjectStore,
    executor: Executor,
) -> Accepted:
    idem_key = request.headers.get("idempotency-key")
    check_idempotency_key(idem_key)

    async def receiver(keep: bool) -> Received:
        return await receive(request, settings, store, executor, keep=keep)

    return await ingest_from(receiver, record_id, principal, ctx, settings, store, idem_key)


def check_idempotency_key(idem_key: str | None) -> None:
    if idem_key is not None and not IDEMPOTENCY_KEY_RE.match(idem_key):
        raise Problem(
            422, "Idempotency-Key must be 1-255 visible ASCII characters.", slug="invalid-idempotency-key"
        )


async def ingest_from(
    receiver: Callable[[bool], Awaitable[Received]],
    record_id: str,
    principal: Principal,
    ctx: audit.AuditContext,
    settings: Settings,
    store: ObjectStore,
    idem_key: str | None,
) -> Accepted:
    """The upload path after the request is parsed: ``receiver(keep)`` reads the content (storing it
    when ``keep``); then media, job and audit events are committed, with Idempotency-Key replay.
    Used by the media upload and by DICOMweb STOW-RS (one call per instance)."""
    from services.db import get_sessionmaker

    maker = get_sessionmaker(settings)

    def existing() -> bool:
        if idem_key is None:
            return False
        with maker() as session:
            return find_idempotent(session, principal.client_id, idem_key) is not None

    try:
        seen_before = await run_in_threadpool(existing)
        received = await receiver(not seen_before)
    except Problem as problem:
        await run_in_threadpool(audit_rejection, settings, ctx, record_id, problem)
        raise

    def commit() -> Accepted:
        with maker() as session:
            if received.key is None:
                assert idem_key is not None
                acc = replay_or_conflict(
                    session, ctx, principal, record_id, idem_key, received.metadata, received.sha256
                )
                session.commit()
                return acc
            committing = False
            try:
                acc = record_upload(session, ctx, principal, record_id, received, idem_key)
                committing = True
                session.commit()
                return acc
            except IntegrityError:
                # Same Idempotency-Key raced us: keep theirs, drop ours.
                session.rollback()
                discard_original(store, received.key)
                if idem_key is None or find_idempotent(session, principal.client_id, idem_key) is None:
                    raise
                acc = replay_or_conflict(
                    session, ctx, principal, record_id, idem_key, received.metadata, received.sha256
                )
                session.commit()
                return acc
            except BaseException:
                # Database down (answered 503 by the app's handler). A rollback on a dead connection
                # must not hide that.
                with contextlib.suppress(Exception):
                    session.rollback()
                if not committing:  # COMMIT was never sent: no row can name the original
                    discard_original(store, received.key)
                # Otherwise COMMIT was sent and its answer lost: the rows may exist, and the client's
                # retry (same Idempotency-Key) will be answered 202 with that job, whose original
                # must still be there. Kept; if no row names it, the orphan sweeper removes it after
                # its grace period, and the reconciler sends the job if it was committed unsent.
                raise

    return await run_in_threadpool(commit)


# --- listing --------------------------------------------------------------------------------------


def record_media(
    session: Session, record_id: str, principal: Principal
) -> list[tuple[Media, Job | None, list[Artifact]]]:
    stmt = select(Media).where(Media.record_id == record_id)
    if not principal.is_admin:
        stmt = stmt.where(Media.client_id == principal.client_id)
    media = list(session.execute(stmt.order_by(Media.created_at, Media.id)).scalars())
    ids = [m.id for m in media]
    jobs: dict[str, Job] = {}
    arts: dict[str, list[Artifact]] = {}
    if ids:
        for j in session.execute(select(Job).where(Job.media_id.in_(ids))).scalars():
            jobs[j.media_id] = j
        for a in session.execute(
            select(Artifact).where(Artifact.media_id.in_(ids), Artifact.deleted_at.is_(None))
        ).scalars():
            arts.setdefault(a.media_id, []).append(a)
    return [(m, jobs.get(m.id), arts.get(m.id, [])) for m in media]
