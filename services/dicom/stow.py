"""STOW-RS (PS3.18 10.5) request parsing and response building; the HTTP route lives in the service.

Why streamed and bounded: a STOW request body can be gigabytes of video. Parts are spooled to
temporary files (in memory below ``spool_bytes``) while the delimiter is searched chunk by chunk, and
every size (preamble, part headers, one part, the whole body, the number of parts) has a limit, so a
client cannot exhaust memory or disk with one request.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from enum import IntEnum
from typing import IO, BinaryIO, Protocol

from pydicom.dataset import Dataset

from .errors import DicomError

DICOM_MEDIA_TYPE = "application/dicom"


class FailureReason(IntEnum):
    """Failure Reason (0008,1197) values used by STOW-RS (PS3.18 Table I.2-1 / PS3.4 status codes)."""

    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111  # PS3.7 C.4: this SOP Instance UID was stored with other content
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


class WarningReason(IntEnum):
    """Warning Reason (0008,1196) values."""

    COERCION_OF_DATA_ELEMENTS = 0xB000
    # Not one of PS3.18's three defined terms: the instance was already received (same SOP Instance
    # UID, same content, same record); the existing job stands. 0x0111 is PS3.7's "Duplicate SOP
    # Instance"; the Warning header of the answer says it in words.
    ALREADY_RECEIVED = 0x0111
    ELEMENTS_DISCARDED = 0xB006
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xB007


class StowError(DicomError):
    """A request-level STOW failure; ``status`` is the HTTP status to answer with (400, 413, 415)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Part:
    """One body part. ``body`` is a spooled temporary file positioned at 0; close it when done."""

    headers: dict[str, str]
    content_type: str
    body: IO[bytes]
    size: int

    def read(self) -> bytes:
        self.body.seek(0)
        return self.body.read()

    def close(self) -> None:
        self.body.close()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def parse_content_type(content_type: str) -> tuple[str, dict[str, str]]:
    """(media type lower-cased, parameters) of a Content-Type header value."""
    msg = Message()
    msg["content-type"] = content_type
    params = {k.lower(): v for k, v in (msg.get_params() or [])[1:]}
    return msg.get_content_type().lower(), params


def check_stow_content_type(content_type: str) -> str:
    """Validate a STOW request Content-Type; return the boundary. StowError 415/400 otherwise."""
    media, params = parse_content_type(content_type or "")
    if media != "multipart/related":
        raise StowError(415, "Content-Type must be multipart/related")
    part_type = params.get("type", DICOM_MEDIA_TYPE).strip().lower()
    if part_type != DICOM_MEDIA_TYPE:
        raise StowError(415, 'only multipart/related; type="application/dicom" is supported')
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 70:
        raise StowError(400, "multipart boundary missing or invalid")
    return boundary


def _chunks(body: BinaryIO | _Readable | Iterable[bytes], size: int) -> Iterator[bytes]:
    if hasattr(body, "read"):
        while True:
            chunk = body.read(size)
            if not chunk:
                return
            yield chunk
    else:
        for chunk in body:
            if chunk:
                yield bytes(chunk)


@dataclass(frozen=True)
class MultipartLimits:
    max_part_bytes: int = 4 * 1024**3
    max_total_bytes: int = 16 * 1024**3
    max_parts: int = 10_000
    max_header_bytes: int = 16 * 1024
    max_preamble_bytes: int = 64 * 1024
    spool_bytes: int = 8 * 1024**2
    chunk_bytes: int = 256 * 1024


def parse_multipart_related(
    content_type: str,
    body_stream: BinaryIO | _Readable | Iterable[bytes],
    limits: MultipartLimits | None = None,
) -> Iterator[Part]:
    """Yield the parts of a ``multipart/related; type="application/dicom"`` body, one at a time.

    A part's ``content_type`` is reported as sent; the caller fails parts that are not
    application/dicom (FailureReason.CANNOT_UNDERSTAND). Raises StowError for request-level problems
    (415 wrong media type, 400 malformed body, 413 a limit exceeded)."""
    lim = limits or MultipartLimits()
    boundary = check_stow_content_type(content_type).encode("ascii", "strict")
    dash_boundary = b"--" + boundary
    delimiter = b"\r\n" + dash_boundary
    chunks = _chunks(body_stream, lim.chunk_bytes)
    buf = bytearray()
    total = 0

    def more() -> bool:
        nonlocal total
        chunk = next(chunks, None)
        if chunk is None:
            return False
        total += len(chunk)
        if total > lim.max_total_bytes:
            raise StowError(413, "request body exceeds the size limit")
        buf.extend(chunk)
        return True

    # Preamble, then the first boundary (which may start the body without a leading CRLF).
    while True:
        idx = buf.find(dash_boundary)
        if idx >= 0 and (idx == 0 or buf[idx - 2 : idx] == b"\r\n"):
            del buf[: idx + len(dash_boundary)]
            break
        if len(buf) > lim.max_preamble_bytes:
            raise StowError(400, "multipart boundary not found")
        if not more():
            raise StowError(400, "multipart boundary not found")
    n_parts = 0
    while True:
        while len(buf) < 2 and more():
            pass
        if buf[:2] == b"--":
            return  # close delimiter
        # Transport padding then CRLF after the boundary.
        while b"\r\n" not in buf[:1024]:
            if len(buf) > 1024 or not more():
                raise StowError(400, "malformed multipart boundary line")
        del buf[: buf.index(b"\r\n") + 2]
        # Part headers.
        while b"\r\n\r\n" not in buf and not buf.startswith(b"\r\n"):
            if len(buf) > lim.max_header_bytes:
                raise StowError(400, "multipart part headers too large")
            if not more():
                raise StowError(400, "truncated multipart part headers")
        if buf.startswith(b"\r\n"):
            raw_headers, rest = b"", 2
        else:
            end = buf.index(b"\r\n\r\n")
            raw_headers, rest = bytes(buf[:end]), end + 4
        if len(raw_headers) > lim.max_header_bytes:
            raise StowError(400, "multipart part headers too large")
        del buf[:rest]
        headers = _parse_headers(raw_headers)
        n_parts += 1
        if n_parts > lim.max_parts:
            raise StowError(413, "too many parts in the request")
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=lim.spool_bytes)  # noqa: SIM115
        size = 0
        try:
            while True:
                idx = buf.find(delimiter)
                if idx >= 0:
                    spool.write(buf[:idx])
                    size += idx
                    del buf[: idx + len(delimiter)]
                    break
                keep = len(delimiter) - 1
                if len(buf) > keep:
                    spool.write(buf[: len(buf) - keep])
                    size += len(buf) - keep
                    del buf[: len(buf) - keep]
                if size > lim.max_part_bytes:
                    raise StowError(413, "a part exceeds the size limit")
                if not more():
                    raise StowError(400, "truncated multipart body: closing boundary missing")
            if size > lim.max_part_bytes:
                raise StowError(413, "a part exceeds the size limit")
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        media, _ = parse_content_type(headers.get("content-type", DICOM_MEDIA_TYPE))
        yield Part(headers=headers, content_type=media, body=spool, size=size)


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


@dataclass(frozen=True)
class StoredInstance:
    sop_class_uid: str
    sop_instance_uid: str
    retrieve_url: str | None = None
    warning_reason: int | None = None


@dataclass(frozen=True)
class FailedInstance:
    failure_reason: int
    sop_class_uid: str = ""  # empty when the part could not be parsed at all
    sop_instance_uid: str = ""


@dataclass
class StowOutcome:
    stored: list[StoredInstance] = field(default_factory=list)
    failed: list[FailedInstance] = field(default_factory=list)


def build_stow_response(
    stored: list[StoredInstance], failed: list[FailedInstance], *, retrieve_url: str | None = None
) -> Dataset:
    """The STOW-RS response data set (PS3.18 Table 10.5.3-1). ``.to_json_dict()`` gives DICOM JSON."""
    ds = Dataset()
    if retrieve_url:
        ds.RetrieveURL = retrieve_url
    if stored:
        items = []
        for s in stored:
            item = Dataset()
            item.ReferencedSOPClassUID = s.sop_class_uid
            item.ReferencedSOPInstanceUID = s.sop_instance_uid
            if s.retrieve_url:
                item.RetrieveURL = s.retrieve_url
            if s.warning_reason is not None:
                item.WarningReason = int(s.warning_reason)
            items.append(item)
        ds.ReferencedSOPSequence = items
    if failed:
        items = []
        for f in failed:
            item = Dataset()
            item.ReferencedSOPClassUID = f.sop_class_uid or None
            item.ReferencedSOPInstanceUID = f.sop_instance_uid or None
            item.FailureReason = int(f.failure_reason)
            items.append(item)
        ds.FailedSOPSequence = items
    return ds


def stow_http_status(stored: list[StoredInstance], failed: list[FailedInstance]) -> int:
    """200 all stored (no warnings); 202 some failed or stored with warnings; 409 none stored; 400 empty.

    (415 for a wrong media type is raised earlier, as ``StowError.status``.)"""
    if not stored and not failed:
        return 400
    if not stored:
        return 409
    if failed or any(s.warning_reason is not None for s in stored):
        return 202
    return 200
