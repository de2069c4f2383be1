"""Content sniffing: what an upload really is, from its first bytes, never from its name.

The service sniffs the first chunk of a streaming upload, so :func:`sniff` needs only the head
(:data:`SNIFF_BYTES`). A positive answer means "worth handing to a decoder", not "valid": the
photo and video readers decode fully and reject polyglots (an image signature in front of HTML or
a ZIP) there.
"""

from __future__ import annotations

import struct
from enum import Enum, StrEnum

__all__ = ["SNIFF_BYTES", "MediaKind", "MediaType", "sniff"]

#: How many leading bytes :func:`sniff` looks at (more are ignored).
SNIFF_BYTES = 4096


class MediaKind(StrEnum):
    """What the service does with an upload."""

    PHOTO = "photo"
    VIDEO = "video"
    DICOM = "dicom"
    UNSUPPORTED = "unsupported"


class MediaType(Enum):
    """A recognised content type: ``kind`` decides the route, ``mime`` is what we report."""

    JPEG = ("jpeg", MediaKind.PHOTO, "image/jpeg")
    PNG = ("png", MediaKind.PHOTO, "image/png")
    WEBP = ("webp", MediaKind.PHOTO, "image/webp")
    HEIC = ("heic", MediaKind.PHOTO, "image/heic")
    HEIF = ("heif", MediaKind.PHOTO, "image/heif")
    AVIF = ("avif", MediaKind.PHOTO, "image/avif")
    TIFF = ("tiff", MediaKind.PHOTO, "image/tiff")
    MP4 = ("mp4", MediaKind.VIDEO, "video/mp4")
    MOV = ("mov", MediaKind.VIDEO, "video/quicktime")
    THREE_GP = ("3gp", MediaKind.VIDEO, "video/3gpp")
    AVI = ("avi", MediaKind.VIDEO, "video/x-msvideo")
    WEBM = ("webm", MediaKind.VIDEO, "video/webm")
    MKV = ("mkv", MediaKind.VIDEO, "video/x-matroska")
    DICOM = ("dicom", MediaKind.DICOM, "application/dicom")
    # Recognised but refused.
    GIF = ("gif", MediaKind.UNSUPPORTED, "image/gif")
    BMP = ("bmp", MediaKind.UNSUPPORTED, "image/bmp")
    SVG = ("svg", MediaKind.UNSUPPORTED, "image/svg+xml")
    HEIF_SEQUENCE = ("heif-sequence", MediaKind.UNSUPPORTED, "image/heif-sequence")
    AUDIO = ("audio", MediaKind.UNSUPPORTED, "audio/*")
    HTML = ("html", MediaKind.UNSUPPORTED, "text/html")
    XML = ("xml", MediaKind.UNSUPPORTED, "application/xml")
    PDF = ("pdf", MediaKind.UNSUPPORTED, "application/pdf")
    ZIP = ("zip", MediaKind.UNSUPPORTED, "application/zip")
    GZIP = ("gzip", MediaKind.UNSUPPORTED, "application/gzip")
    TEXT = ("text", MediaKind.UNSUPPORTED, "text/plain")
    EMPTY = ("empty", MediaKind.UNSUPPORTED, "application/x-empty")
    UNKNOWN = ("unknown", MediaKind.UNSUPPORTED, "application/octet-stream")

    def __init__(self, label: str, kind: MediaKind, mime: str) -> None:
        self.label = label
        self.kind = kind
        self.mime = mime

    @property
    def supported(self) -> bool:
        return self.kind is not MediaKind.UNSUPPORTED


# ISO BMFF (ftyp) brands. Checked major brand first, then the compatible brands.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis"}
_HEIF_BRANDS = {b"mif1", b"mif2"}
_HEIF_SEQ_BRANDS = {b"msf1", b"hevc", b"hevx", b"hevm", b"hevs", b"avis"}
_AVIF_BRANDS = {b"avif"}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
    b"mp41", b"mp42", b"mp71", b"avc1", b"dash", b"M4V ", b"M4VH", b"M4VP", b"f4v ", b"mmp4",
    b"MSNV", b"NDAS", b"XAVC", b"hvc1",
}  # fmt: skip
_3GP_PREFIXES = (b"3gp", b"3g2", b"3ge", b"3gg")
_MOV_BRANDS = {b"qt  "}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Top-level QuickTime atoms that may open an old .mov that has no ftyp.
_QT_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_DICOM_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
}  # fmt: skip
# Explicit-VR elements with a 2-byte reserved field and a 4-byte length.
_DICOM_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_BMP_HEADERS = {12, 40, 52, 56, 64, 108, 124}


def sniff(head: bytes) -> MediaType:
    """Identify content from its first bytes (up to :data:`SNIFF_BYTES` are used)."""
    head = bytes(head[:SNIFF_BYTES])
    if not head:
        return MediaType.EMPTY
    # DICOM first: its 128-byte preamble is free-form and is often a TIFF header
    # (dual-personality files), which must still go down the DICOM route.
    if head[128:132] == b"DICM":
        return MediaType.DICOM
    for probe in (_sniff_image, _sniff_bmff, _sniff_riff, _sniff_ebml, _sniff_dicom, _sniff_other):
        found = probe(head)
        if found is not None:
            return found
    return _sniff_text(head)


def _sniff_image(head: bytes) -> MediaType | None:
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType.PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return MediaType.GIF
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return MediaType.TIFF
    if head.startswith(b"BM") and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADERS:
        return MediaType.BMP
    return None


def _sniff_bmff(head: bytes) -> MediaType | None:
    """ISO base media file format: MP4, MOV, 3GP, HEIC/HEIF, AVIF (``ftyp`` box at offset 4)."""
    if len(head) < 12:
        return None
    size = struct.unpack_from(">I", head, 0)[0]
    box = head[4:8]
    if box != b"ftyp":
        if box in _QT_FIRST_ATOMS and (size >= 8 or size in (0, 1)):
            return MediaType.MOV
        return None
    if size < 16 or size % 4:
        return None
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    for brands in ([major], compatible):
        found = _brand_type(brands)
        if found is not None:
            return found
    return MediaType.UNKNOWN


def _brand_type(brands: list[bytes]) -> MediaType | None:
    # Images first: a HEIC often lists "mif1" and "heic"; an AVIF lists "mif1" and "avif".
    if any(b in _AVIF_BRANDS for b in brands):
        return MediaType.AVIF
    if any(b in _HEIC_BRANDS for b in brands):
        return MediaType.HEIC
    if any(b in _HEIF_BRANDS for b in brands):
        return MediaType.HEIF
    if any(b in _HEIF_SEQ_BRANDS for b in brands):
        return MediaType.HEIF_SEQUENCE
    if any(b in _MOV_BRANDS for b in brands):
        return MediaType.MOV
    if any(b.startswith(_3GP_PREFIXES) for b in brands):
        return MediaType.THREE_GP
    if any(b in _MP4_BRANDS for b in brands):
        return MediaType.MP4
    if any(b in _AUDIO_BRANDS for b in brands):
        return MediaType.AUDIO
    return None


def _sniff_riff(head: bytes) -> MediaType | None:
    if not head.startswith(b"RIFF") or len(head) < 12:
        return None
    form = head[8:12]
    if form == b"WEBP":
        return MediaType.WEBP
    if form in (b"AVI ", b"AVIX"):
        return MediaType.AVI
    if form == b"WAVE":
        return MediaType.AUDIO
    return MediaType.UNKNOWN


def _sniff_ebml(head: bytes) -> MediaType | None:
    """Matroska/WebM: EBML header whose DocType (element 0x4282) says which."""
    if not head.startswith(_EBML_MAGIC):
        return None
    at = head.find(b"\x42\x82", 4, 64)
    if at < 0 or at + 3 > len(head):
        return MediaType.UNKNOWN
    size_byte = head[at + 2]
    if not size_byte & 0x80:  # DocType sizes are tiny: one-byte vint
        return MediaType.UNKNOWN
    doctype = head[at + 3 : at + 3 + (size_byte & 0x7F)].rstrip(b"\x00")
    if doctype == b"webm":
        return MediaType.WEBM
    if doctype == b"matroska":
        return MediaType.MKV
    return MediaType.UNKNOWN


def _sniff_dicom(head: bytes) -> MediaType | None:
    """Part-10 files (``DICM`` at 128) or bare datasets that start with group 0002/0008."""
    if head.startswith(b"DICM"):
        return MediaType.DICOM
    if _plausible_bare_dataset(head):
        return MediaType.DICOM
    return None


def _plausible_bare_dataset(head: bytes) -> bool:
    """Walk the first elements as implicit or explicit VR little endian; tags must ascend.

    Old files (e.g. ACR-NEMA style secondary captures) have no preamble: the dataset starts
    right at offset 0 with a group 0x0002 or 0x0008 tag. Two consistent elements in a row are
    required so random binary that happens to start with ``08 00`` is not taken for DICOM.
    """
    if len(head) < 16:
        return False
    group = struct.unpack_from("<H", head, 0)[0]
    if group not in (0x0002, 0x0008):
        return False
    explicit = head[4:6] in _DICOM_VRS
    pos = 0
    last_tag = -1
    elements = 0
    while pos + 8 <= len(head) and elements < 8:
        grp, elem = struct.unpack_from("<HH", head, pos)
        tag = (grp << 16) | elem
        if tag <= last_tag or grp not in (0x0002, 0x0008):
            return elements >= 2 and grp > 0x0008 and tag > last_tag
        if explicit:
            vr = head[pos + 4 : pos + 6]
            if vr not in _DICOM_VRS:
                return False
            if vr in _DICOM_LONG_VRS:
                if pos + 12 > len(head):
                    return elements >= 1
                length = struct.unpack_from("<I", head, pos + 8)[0]
                header = 12
            else:
                length = struct.unpack_from("<H", head, pos + 6)[0]
                header = 8
        else:
            length = struct.unpack_from("<I", head, pos + 4)[0]
            header = 8
        if length == 0xFFFFFFFF:  # undefined length (sequence): can't walk further cheaply
            return elements >= 1
        if length > 1 << 20:
            return False
        last_tag = tag
        elements += 1
        pos += header + length
    return elements >= 2


def _sniff_other(head: bytes) -> MediaType | None:
    if head.startswith(b"%PDF-"):
        return MediaType.PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return MediaType.ZIP
    if head.startswith(b"\x1f\x8b"):
        return MediaType.GZIP
    if head.startswith((b"ID3", b"OggS", b"fLaC")) or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf1"):
        return MediaType.AUDIO
    return _sniff_markup(head)


def _sniff_markup(head: bytes) -> MediaType | None:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip(b" \t\r\n\x0c").lower()
    html_starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<meta",
                   b"<title", b"<div", b"<a ", b"<p>", b"<img", b"<style", b"<!--")  # fmt: skip
    if text.startswith(html_starts):
        return MediaType.HTML
    if text.startswith(b"<svg"):
        return MediaType.SVG
    if text.startswith(b"<?xml"):
        if b"<svg" in text:
            return MediaType.SVG
        if b"<html" in text:
            return MediaType.HTML
        return MediaType.XML
    return None


def _sniff_text(head: bytes) -> MediaType:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the chunk is still text.
        if exc.start < len(head) - 3:
            return MediaType.UNKNOWN
        decoded = head[: exc.start].decode("utf-8")
    controls = sum(1 for ch in decoded if ord(ch) < 32 and ch not in "\t\n\r\x0c")
    if controls == 0:
        return MediaType.TEXT
    return MediaType.UNKNOWN
