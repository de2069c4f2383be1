"""WADO-RS (PS3.18 10.4) building blocks: Accept negotiation, multipart/related bodies, frames and
rendered frames. All of it reads the masked artifact only: the index has no other object to name.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.dicom.stow import parse_content_type

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET = "application/octet-stream"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
RENDERED = ("image/jpeg", "image/png")


class NotAcceptable(ValueError):
    """No media type the client accepts can be produced (406)."""


@dataclass(frozen=True)
class Accepted:
    media_type: str
    transfer_syntax: str | None  # None: as stored ("*" or not asked)


def _ranges(accept: str | None) -> list[tuple[str, dict[str, str]]]:
    if not accept or not accept.strip():
        return [("*/*", {})]
    out = []
    for item in accept.split(","):
        if item.strip():
            media, params = parse_content_type(item.strip())
            out.append((media, params))
    return out or [("*/*", {})]


def negotiate_multipart(accept: str | None, part_type: str, stored_ts: set[str]) -> Accepted:
    """``multipart/related; type=<part_type>[; transfer-syntax=...]`` against the Accept header.
    We serve instances as stored (the masked file's own transfer syntax): a request for another
    transfer syntax, or for another media type, is not acceptable."""
    for media, params in _ranges(accept):
        if params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media in ("*/*", "multipart/*"):
            return Accepted(part_type, None)
        if media != "multipart/related":
            continue
        wanted = params.get("type", part_type).strip().lower()
        if wanted not in (part_type, "*/*", part_type.split("/")[0] + "/*"):
            continue
        ts = params.get("transfer-syntax", "*").strip()
        if (
            ts == "*"
            or (part_type == DICOM and stored_ts <= {ts})
            or (part_type == OCTET and ts == EXPLICIT_LE)
        ):
            return Accepted(part_type, None if ts == "*" else ts)
    raise NotAcceptable(f'This resource is served as multipart/related; type="{part_type}".')


def negotiate_single(accept: str | None, offered: Iterable[str]) -> str:
    """The first offered media type the Accept header allows (offered order breaks ties)."""
    offered = list(offered)
    for media, params in _ranges(accept):
        if params.get("q", "1") in ("0", "0.0", "0.00", "0.000"):
            continue
        if media == "*/*":
            return offered[0]
        major = media.split("/", 1)[0]
        for candidate in offered:
            if media == candidate or (media.endswith("/*") and candidate.startswith(major + "/")):
                return candidate
    raise NotAcceptable("Acceptable here: " + ", ".join(offered) + ".")


def new_boundary() -> str:
    return "dmask-" + secrets.token_hex(16)


def multipart_content_type(part_type: str, boundary: str) -> str:
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def part_header(boundary: str, content_type: str, location: str | None = None) -> bytes:
    head = f"--{boundary}\r\nContent-Type: {content_type}\r\n"
    if location:
        head += f"Content-Location: {location}\r\n"
    return (head + "\r\n").encode("ascii")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("ascii")


def multipart(parts: Iterable[tuple[str, Iterable[bytes], str | None]], boundary: str) -> Iterator[bytes]:
    """Stream (content type, body chunks, location) parts as one multipart/related body."""
    for content_type, chunks, location in parts:
        yield part_header(boundary, content_type, location)
        yield from chunks
        yield b"\r\n"
    yield closing(boundary)


def parse_frame_list(raw: str, frames: int) -> list[int]:
    """``1,3,5`` -> [1, 3, 5]; ValueError when malformed, LookupError when a frame does not exist."""
    numbers = []
    for item in raw.split(","):
        item = item.strip()
        if not item.isdigit() or len(item) > 9 or int(item) < 1:
            raise ValueError("frame numbers are positive integers")
        numbers.append(int(item))
    if not numbers or len(numbers) > 10_000:
        raise ValueError("frame numbers are positive integers")
    if any(n > frames for n in numbers):
        raise LookupError("no such frame")
    return numbers


def read_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """The wanted frames (1-based) of a masked instance as RGB uint8 arrays, decoded in one pass."""
    from services.dicom import iter_rgb_frames, read_dicom

    ds = read_dicom(path)
    want = set(wanted)
    out: dict[int, np.ndarray] = {}
    for number, frame in enumerate(iter_rgb_frames(ds), start=1):
        if number in want:
            out[number] = frame
            if len(out) == len(want):
                break
    return out


def render(frame: np.ndarray, media_type: str, quality: int = 90) -> bytes:
    from PIL import Image

    image = Image.fromarray(frame, mode="RGB") if frame.ndim == 3 else Image.fromarray(frame)
    buf = io.BytesIO()
    if media_type == "image/png":
        image.save(buf, format="PNG")
    else:
        image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def bulk_value(path: Path, tag: str) -> bytes | None:
    """The raw value of a top-level element (pixel data: native bytes, or the encapsulated fragments
    concatenated: the video stream for H.264); None when the instance has no such element."""
    import pydicom
    from pydicom.encaps import generate_fragments

    ds = pydicom.dcmread(str(path))
    number = int(tag, 16)
    if number not in ds:
        return None
    elem = ds[number]
    value = elem.value
    if not isinstance(value, bytes | bytearray):
        return None
    if number == 0x7FE00010 and ds.file_meta.TransferSyntaxUID.is_encapsulated:
        fragments = list(generate_fragments(value))
        return b"".join(fragments[1:] if len(fragments) > 1 else fragments)
    return bytes(value)
