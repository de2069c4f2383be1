"""Reading DICOM files that arrive from outside: structure first, then pydicom.

Why a structural pass before pydicom: pydicom trusts length fields. A hostile or truncated file with
a 4 GB value length makes it seek, allocate or read far past the data; a deflate bomb inflates without
limit; garbage read with ``force=True`` can come back as a "dataset" of junk elements. ``inspect``
walks every element header (and every sequence item and pixel fragment) without reading values,
checking each length against the bytes that are really there, so a bad file fails in microseconds
with a :class:`DicomError` whose reason holds only tags and sizes (never values or file names).
"""

from __future__ import annotations

import logging
import mmap
import struct
import warnings
import zlib
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

import pydicom
import pydicom.config
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .errors import DicomError


class _WithholdValues(logging.Filter):
    """pydicom reports invalid values by quoting them ("Invalid value for VR PN: 'DOE^JOHN...'"),
    to its logger and as a warning, and the worker's log would carry them: patient data. The record
    is kept (level, origin) but its text is replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = "pydicom reported a problem with a value (text withheld: it may quote patient data)"
        record.args = ()
        return True


def _silence_pydicom_values() -> None:
    logger = logging.getLogger("pydicom")
    if not any(isinstance(f, _WithholdValues) for f in logger.filters):
        logger.addFilter(_WithholdValues())
    # Value validation on reading is what quotes values; the reader's own checks (structure,
    # lengths, SOP Class) decide what is refused, so pydicom's per-value complaints add nothing.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # Any remaining texts as warnings (printed to stderr once per location): not wanted either.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")


_silence_pydicom_values()

_VRS = {
    b"AE",
    b"AS",
    b"AT",
    b"CS",
    b"DA",
    b"DS",
    b"DT",
    b"FD",
    b"FL",
    b"IS",
    b"LO",
    b"LT",
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"PN",
    b"SH",
    b"SL",
    b"SQ",
    b"SS",
    b"ST",
    b"SV",
    b"TM",
    b"UC",
    b"UI",
    b"UL",
    b"UN",
    b"UR",
    b"US",
    b"UT",
    b"UV",
}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xE000, 0xE00D, 0xE0DD
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


@dataclass(frozen=True)
class ReadLimits:
    """Bounds for untrusted input; the defaults suit a hospital upload endpoint."""

    max_file_bytes: int = 4 * 1024**3
    # Deflated transfer syntax. Deflate reaches ~1000:1, and the worker holds the inflated data set
    # twice (this check, then pydicom's own inflation): at 2 GiB a 2 MiB upload cost ~4 GiB of
    # worker memory. Deflate is used for structured reports and small objects; 256 MiB is far above
    # those and bounds a bomb to a few hundred MiB.
    max_inflated_bytes: int = 256 * 1024**2
    max_depth: int = 24  # nested sequences
    max_elements: int = 5_000_000


@dataclass(frozen=True)
class Layout:
    """What the structural pass learned about a file."""

    has_preamble: bool
    has_file_meta: bool
    transfer_syntax_uid: str  # from the file meta, or inferred when there is none
    inferred: bool  # True when the transfer syntax was guessed (no file meta)
    explicit_vr: bool
    little_endian: bool
    deflated: bool
    size: int


class _Walker:
    def __init__(self, buf: bytes | mmap.mmap | memoryview, limits: ReadLimits) -> None:
        self.buf = buf
        self.limits = limits
        self.count = 0

    def _tick(self) -> None:
        self.count += 1
        if self.count > self.limits.max_elements:
            raise DicomError("too many data elements")

    def _u16(self, pos: int, little: bool) -> int:
        return int(struct.unpack_from("<H" if little else ">H", self.buf, pos)[0])

    def _u32(self, pos: int, little: bool) -> int:
        return int(struct.unpack_from("<I" if little else ">I", self.buf, pos)[0])

    def dataset(self, pos: int, end: int, explicit: bool, little: bool, depth: int, in_item: bool) -> int:
        """Walk elements in [pos, end). In an undefined-length item, stop after the item delimiter."""
        if depth > self.limits.max_depth:
            raise DicomError("sequences nested too deeply")
        while pos < end:
            if end - pos < 8:
                raise DicomError("truncated data element header")
            self._tick()
            group, elem = self._u16(pos, little), self._u16(pos + 2, little)
            tag = (group << 16) | elem
            if group == 0xFFFE:
                if elem == _ITEM_END and in_item:
                    return pos + 8
                raise DicomError("misplaced item or delimiter tag")
            if explicit:
                vr = bytes(self.buf[pos + 4 : pos + 6])
                if vr not in _VRS:
                    raise DicomError(f"malformed data element header at ({group:04X},{elem:04X})")
                if vr in _LONG_VRS:
                    if end - pos < 12:
                        raise DicomError("truncated data element header")
                    length, pos = self._u32(pos + 8, little), pos + 12
                else:
                    length, pos = self._u16(pos + 6, little), pos + 8
            else:
                vr = b""
                length, pos = self._u32(pos + 4, little), pos + 8
            if length == _UNDEFINED:
                if tag in _PIXEL_TAGS:
                    pos = self._fragments(pos, end, little)
                elif vr in (b"SQ", b"UN", b""):
                    # Undefined-length UN holds an implicit VR little endian sequence (PS3.5 6.2.2).
                    inner_explicit = explicit and vr == b"SQ"
                    inner_little = little if vr == b"SQ" else True
                    pos = self._sequence(pos, end, None, inner_explicit, inner_little, depth + 1)
                else:
                    raise DicomError(f"undefined length on a non-sequence element ({group:04X},{elem:04X})")
                continue
            if length > end - pos:
                raise DicomError(
                    f"element ({group:04X},{elem:04X}) declares {length} bytes but only {end - pos} remain"
                )
            if vr == b"SQ" or (not explicit and group != 0xFFFE and _is_sq(tag)):
                self._sequence(pos, pos + length, pos + length, explicit, little, depth + 1)
            pos += length
        if in_item:
            raise DicomError("missing item delimiter")
        return pos

    def _sequence(
        self, pos: int, end: int, defined_end: int | None, explicit: bool, little: bool, depth: int
    ) -> int:
        limit = defined_end if defined_end is not None else end
        while pos < limit:
            if limit - pos < 8:
                raise DicomError("truncated sequence item")
            self._tick()
            group, elem = self._u16(pos, little), self._u16(pos + 2, little)
            length = self._u32(pos + 4, little)
            pos += 8
            if group == 0xFFFE and elem == _SEQ_END and defined_end is None:
                return pos
            if group != 0xFFFE or elem != _ITEM:
                raise DicomError("malformed sequence item")
            if length == _UNDEFINED:
                pos = self.dataset(pos, limit, explicit, little, depth, in_item=True)
            else:
                if length > limit - pos:
                    raise DicomError(f"sequence item declares {length} bytes but only {limit - pos} remain")
                self.dataset(pos, pos + length, explicit, little, depth, in_item=False)
                pos += length
        if defined_end is None:
            raise DicomError("missing sequence delimiter")
        return pos

    def _fragments(self, pos: int, end: int, little: bool) -> int:
        while True:
            if end - pos < 8:
                raise DicomError("truncated encapsulated pixel data")
            self._tick()
            group, elem = self._u16(pos, little), self._u16(pos + 2, little)
            length = self._u32(pos + 4, little)
            pos += 8
            if group == 0xFFFE and elem == _SEQ_END:
                return pos
            if group != 0xFFFE or elem != _ITEM or length == _UNDEFINED:
                raise DicomError("malformed encapsulated pixel data")
            if length > end - pos:
                raise DicomError(f"pixel data fragment declares {length} bytes but only {end - pos} remain")
            pos += length


def _is_sq(tag: int) -> bool:
    try:
        return bool(dictionary_VR(tag) == "SQ")
    except KeyError:
        return False


def _inflate(data: bytes | mmap.mmap | memoryview, limit: int) -> memoryview:
    """Inflate a raw deflate stream, refusing to produce more than ``limit`` bytes (deflate bombs)."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    step = 1 << 20
    # Views are released even when refusing: a traceback keeping a view of the caller's mmap alive
    # makes closing the mmap fail with BufferError, which hid the DicomError (and, being no
    # DicomError, made the job an internal error retried until dead-lettered).
    with memoryview(data) as view:
        try:
            for i in range(0, len(view), step):
                with view[i : i + step] as piece:
                    out += d.decompress(piece, limit + 1 - len(out))
                if len(out) > limit or d.unconsumed_tail:
                    raise DicomError("deflated data set inflates beyond the size limit")
            out += d.flush()
        except zlib.error as exc:
            raise DicomError("corrupt deflated data set") from exc
    if len(out) > limit:
        raise DicomError("deflated data set inflates beyond the size limit")
    return memoryview(out)  # no copy: the structural walk only reads it


def _guess_encoding(buf: bytes | mmap.mmap | memoryview, pos: int) -> tuple[bool, bool]:
    """(explicit, little) for a data set with no file meta, from its first element header."""
    head = bytes(buf[pos : pos + 8])
    if len(head) < 8:
        raise DicomError("not a DICOM file: too short")
    # Data sets start with a low group number (0008 mostly): the byte order that reads it smaller wins.
    little = struct.unpack_from("<H", head)[0] <= struct.unpack_from(">H", head)[0]
    explicit = head[4:6] in _VRS and head[4:6].isupper()
    return explicit, little


def inspect_bytes(buf: bytes | mmap.mmap | memoryview, limits: ReadLimits | None = None) -> Layout:
    """Validate the structure of a whole DICOM file held in ``buf`` (see module doc)."""
    limits = limits or ReadLimits()
    size = len(buf)
    if size > limits.max_file_bytes:
        raise DicomError("file exceeds the size limit")
    if size < 8:
        raise DicomError("not a DICOM file: too short")
    walker = _Walker(buf, limits)
    has_preamble = size >= 132 and bytes(buf[128:132]) == b"DICM"
    pos = 132 if has_preamble else (4 if bytes(buf[0:4]) == b"DICM" else 0)
    ts: str | None = None
    has_meta = False
    # File meta information: group 0002, always explicit VR little endian.
    while size - pos >= 8 and struct.unpack_from("<H", buf, pos)[0] == 0x0002:
        has_meta = True
        walker._tick()
        elem = struct.unpack_from("<H", buf, pos + 2)[0]
        vr = bytes(buf[pos + 4 : pos + 6])
        if vr not in _VRS:
            raise DicomError("malformed file meta information")
        if vr in _LONG_VRS:
            if size - pos < 12:
                raise DicomError("truncated file meta information")
            length, vpos = struct.unpack_from("<I", buf, pos + 8)[0], pos + 12
        else:
            length, vpos = struct.unpack_from("<H", buf, pos + 6)[0], pos + 8
        if length == _UNDEFINED or length > size - vpos:
            raise DicomError("file meta element length exceeds the data")
        if elem == 0x0010:
            if length > 64:
                raise DicomError("invalid transfer syntax UID")
            ts = bytes(buf[vpos : vpos + length]).rstrip(b"\x00 ").decode("ascii", "replace")
        pos = vpos + length
    inferred = ts is None
    deflated = False
    if ts is None:
        explicit, little = _guess_encoding(buf, pos)
        ts = (
            (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
            if explicit
            else ImplicitVRLittleEndian
        )
    elif ts == ImplicitVRLittleEndian:
        explicit, little = False, True
    elif ts == ExplicitVRBigEndian:
        explicit, little = True, False
    else:
        explicit, little = True, True
        deflated = ts == DeflatedExplicitVRLittleEndian
    if deflated:
        with memoryview(buf) as whole, whole[pos:] as deflated_part:
            inflated = _inflate(deflated_part, limits.max_inflated_bytes)
        _Walker(inflated, limits).dataset(0, len(inflated), True, True, 0, in_item=False)
    else:
        if pos >= size:
            raise DicomError("not a DICOM file: no data set")
        walker.dataset(pos, size, explicit, little, 0, in_item=False)
    return Layout(has_preamble, has_meta, str(ts), inferred, explicit, little, deflated, size)


def inspect(src: Path | str, limits: ReadLimits | None = None) -> Layout:
    """:func:`inspect_bytes` on a file, memory-mapped so that nothing but headers is paged in."""
    path = Path(src)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DicomError("input file cannot be read") from exc
    limits = limits or ReadLimits()
    if size > limits.max_file_bytes:
        raise DicomError("file exceeds the size limit")
    if size < 8:
        raise DicomError("not a DICOM file: too short")
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return inspect_bytes(mm, limits)


def read_dicom(src: Path | str | bytes, limits: ReadLimits | None = None) -> Dataset:
    """Read an untrusted DICOM file (Part 10 with or without preamble/file meta, or a bare data set).

    Raises :class:`DicomError` for anything structurally unsound or not a DICOM object. A file with no
    file meta gets one with the inferred transfer syntax, so pixel decoding works downstream."""
    if isinstance(src, bytes | bytearray):
        layout = inspect_bytes(src, limits)
        fp: BinaryIO | Path = BytesIO(src)
    else:
        layout = inspect(src, limits)
        fp = Path(src)
    try:
        ds = pydicom.dcmread(fp, force=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, struct.error, zlib.error, OSError) as exc:
        raise DicomError("DICOM data set cannot be parsed") from exc
    except Exception as exc:  # pydicom raises assorted types on malformed input
        raise DicomError("DICOM data set cannot be parsed") from exc
    if "SOPClassUID" not in ds or not str(ds.SOPClassUID).strip():
        raise DicomError("not a DICOM object: no SOP Class UID")
    if not isinstance(getattr(ds, "file_meta", None), FileMetaDataset):
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID(layout.transfer_syntax_uid)
    return ds
