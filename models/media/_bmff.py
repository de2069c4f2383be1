"""Minimal ISO BMFF (MP4/MOV) box access for what FFmpeg/PyAV do not expose.

Used for one thing: the clean-aperture (``clap``) box, i.e. container-level cropping. H.264 4:2:0
can only crop by even amounts in its SPS, so an odd-sized video is stored padded to even and the
``clap`` box says what to show. We write it after muxing and read it back on input, because
libavcodec does not apply container cropping by itself.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_VISUAL_SAMPLE_ENTRY_HEADER = 78  # bytes between a visual sample entry's box header and its children
_MAX_MOOV_BYTES = 256 << 20


@dataclass(frozen=True)
class Box:
    offset: int  # of the box header in the buffer
    header: int  # 8, or 16 with a 64-bit size
    size: int  # whole box
    type: bytes

    @property
    def payload(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class CropRect:
    """Visible area in coded pixels."""

    left: int
    top: int
    width: int
    height: int


def iter_boxes(buf: bytes | bytearray, start: int, end: int) -> list[Box]:
    """Boxes in ``buf[start:end]``; stops quietly at anything malformed."""
    boxes: list[Box] = []
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        boxes.append(Box(pos, header, size, typ))
        pos += size
    return boxes


def read_moov(fh: BinaryIO, file_size: int) -> tuple[int, bytes] | None:
    """Find the top-level ``moov`` box by walking headers; return (offset, bytes) or None."""
    pos = 0
    while pos + 8 <= file_size:
        fh.seek(pos)
        hdr = fh.read(16)
        if len(hdr) < 8:
            return None
        size, typ = struct.unpack_from(">I4s", hdr, 0)
        header = 8
        if size == 1:
            if len(hdr) < 16:
                return None
            size = struct.unpack_from(">Q", hdr, 8)[0]
            header = 16
        elif size == 0:
            size = file_size - pos
        if size < header:
            return None
        if typ == b"moov":
            if size > _MAX_MOOV_BYTES or pos + size > file_size:
                return None
            fh.seek(pos)
            return pos, fh.read(size)
        pos += size
    return None


def _video_sample_entry(moov: bytes | bytearray) -> tuple[list[Box], Box] | None:
    """Path of boxes from moov down to the first video track's sample entry, and that entry."""
    top = iter_boxes(moov, 0, len(moov))
    if not top or top[0].type != b"moov":
        return None
    moov_box = top[0]
    for trak in iter_boxes(moov, moov_box.payload, moov_box.end):
        if trak.type != b"trak":
            continue
        path = [moov_box, trak]
        mdia = _child(moov, trak, b"mdia")
        if mdia is None:
            continue
        hdlr = _child(moov, mdia, b"hdlr")
        if hdlr is None or moov[hdlr.payload + 8 : hdlr.payload + 12] != b"vide":
            continue
        minf = _child(moov, mdia, b"minf")
        stbl = _child(moov, minf, b"stbl") if minf else None
        stsd = _child(moov, stbl, b"stsd") if stbl else None
        if minf is None or stbl is None or stsd is None:
            return None
        entries = iter_boxes(moov, stsd.payload + 8, stsd.end)  # full box + entry_count
        if not entries:
            return None
        return [*path, mdia, minf, stbl, stsd], entries[0]
    return None


def _child(buf: bytes | bytearray, parent: Box, typ: bytes) -> Box | None:
    for box in iter_boxes(buf, parent.payload, parent.end):
        if box.type == typ:
            return box
    return None


def _children_of_entry(buf: bytes | bytearray, entry: Box) -> list[Box]:
    return iter_boxes(buf, entry.payload + _VISUAL_SAMPLE_ENTRY_HEADER, entry.end)


def read_clean_aperture(path: str | Path) -> CropRect | None:
    """Crop rectangle from the first video track's ``clap`` box, or None (absent or unusable)."""
    try:
        return _read_clean_aperture(Path(path))
    except (struct.error, OSError, ValueError, ZeroDivisionError):
        return None  # malformed boxes: FFmpeg's own checks decide whether the file is usable


def _read_clean_aperture(p: Path) -> CropRect | None:
    with p.open("rb") as fh:
        found = read_moov(fh, p.stat().st_size)
    if found is None:
        return None
    moov = found[1]
    located = _video_sample_entry(moov)
    if located is None:
        return None
    entry = located[1]
    base = entry.payload
    if entry.size < entry.header + _VISUAL_SAMPLE_ENTRY_HEADER:
        return None
    coded_w, coded_h = struct.unpack_from(">HH", moov, base + 24)
    for box in _children_of_entry(moov, entry):
        if box.type != b"clap" or box.size - box.header < 32:
            continue
        wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack_from(">IIIIiIiI", moov, box.payload)
        if 0 in (wd, hd, xd, yd):
            return None
        width, height = Fraction(wn, wd), Fraction(hn, hd)
        left = (coded_w - width) / 2 + Fraction(xn, xd)
        top = (coded_h - height) / 2 + Fraction(yn, yd)
        rect = CropRect(round(left), round(top), round(width), round(height))
        if (
            rect.width <= 0
            or rect.height <= 0
            or rect.left < 0
            or rect.top < 0
            or rect.left + rect.width > coded_w
            or rect.top + rect.height > coded_h
        ):
            return None
        return rect
    return None


def write_clean_aperture(path: str | Path, display_width: int, display_height: int) -> None:
    """Crop the first video track to ``display_width x display_height`` (top-left kept).

    Inserts a ``clap`` box into the video sample entry. The track header keeps the coded size:
    FFmpeg reads a tkhd size that differs from the coded one as a non-square pixel aspect.
    Works with ``moov`` after the media data (patched in place) or before it (faststart: the
    file is rewritten and every chunk offset moved by the inserted bytes).
    """
    p = Path(path)
    with p.open("rb") as fh:
        size = p.stat().st_size
        found = read_moov(fh, size)
    if found is None:
        raise ValueError("no moov box")
    moov_offset, old_moov = found
    moov = _moov_with_clap(old_moov, display_width, display_height)
    delta = len(moov) - len(old_moov)
    if moov_offset + len(old_moov) == size:
        with p.open("r+b") as fh:
            fh.seek(moov_offset)
            fh.write(moov)
        return
    _shift_chunk_offsets(moov, delta, after=moov_offset)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as out, p.open("rb") as src:
            out.write(src.read(moov_offset))
            out.write(moov)
            src.seek(moov_offset + len(old_moov))
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _moov_with_clap(moov_bytes: bytes, display_width: int, display_height: int) -> bytearray:
    moov = bytearray(moov_bytes)
    located = _video_sample_entry(moov)
    if located is None:
        raise ValueError("no video sample entry")
    parents, entry = located
    coded_w, coded_h = struct.unpack_from(">HH", moov, entry.payload + 24)
    children = _children_of_entry(moov, entry)
    if any(b.type == b"clap" for b in children):
        raise ValueError("clap already present")
    # After the codec configuration, before pasp (ISO 14496-12 order; parsers accept any order).
    insert_at = entry.end
    for child in children:
        if child.type in (b"pasp", b"colr", b"btrt"):
            insert_at = child.offset
            break
    clap = struct.pack(
        ">I4sIIIIiIiI",
        40,
        b"clap",
        display_width,
        1,
        display_height,
        1,
        display_width - coded_w,  # offset of the aperture centre from the picture centre, in halves
        2,
        display_height - coded_h,
        2,
    )
    for box in [*parents, entry]:
        if box.header != 8:
            raise ValueError("64-bit box sizes not supported here")
        struct.pack_into(">I", moov, box.offset, box.size + len(clap))
    moov[insert_at:insert_at] = clap
    return moov


def _shift_chunk_offsets(moov: bytearray, delta: int, after: int) -> None:
    """Add ``delta`` to every stco/co64 chunk offset that points past ``after`` (the old moov)."""
    top = iter_boxes(moov, 0, len(moov))
    if not top:
        raise ValueError("bad moov")
    pending = [top[0]]
    while pending:
        box = pending.pop()
        if box.type in _CONTAINER_BOXES:
            pending.extend(iter_boxes(moov, box.payload, box.end))
        elif box.type in (b"stco", b"co64"):
            count = struct.unpack_from(">I", moov, box.payload + 4)[0]
            fmt, width = (">I", 4) if box.type == b"stco" else (">Q", 8)
            if box.payload + 8 + count * width > box.end:
                raise ValueError("bad chunk offset table")
            for k in range(count):
                at = box.payload + 8 + k * width
                value = struct.unpack_from(fmt, moov, at)[0]
                if value > after:
                    if box.type == b"stco" and value + delta > 0xFFFFFFFF:
                        raise ValueError("chunk offset overflow")
                    struct.pack_into(fmt, moov, at, value + delta)
