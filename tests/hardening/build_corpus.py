"""Build the hostile / broken input corpus of the hardening tests.

Deterministic: every case is derived from fixed shared media (``$DMASK_SHARED_DATA``) or built from
constants, with fixed offsets and a seeded RNG, so the same bytes come out on every machine. Nothing
here is committed but this script: the tests build the corpus into a temporary folder at session
start (``build(out_dir, shared)``), and the command line does the same for inspection:

    .venv/bin/python tests/hardening/build_corpus.py /tmp/corpus [--shared ../shared/data]

Each case is one file plus how it is sent (raw body or multipart, headers, metadata) and what the
service must answer. ``expect`` is either ``"http:<status>:<problem slug>"`` (refused at the API, nothing
stored), ``"job:failed:<text in failure_reason>"`` (accepted, then failed with a reason),
``"job:succeeded"``, or ``"job:done"`` (decodable-but-damaged input: succeeded or failed with a
reason, both fine; the worker must survive it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import struct
import sys
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

FACE_JPEG = "faces/angelina_jolie/4.jpg"  # 330x512, one face, masks in a few seconds on CPU
FACE_VIDEO = "videos/livep_d0.mp4"  # 512x512 H.264, moov at the end
DICOM_CT = "dicom/ct_small.dcm"  # explicit VR LE, preamble, 128x128
DICOM_FACE = "dicom/ot_pal8_face.dcm"
DICOM_NO_PIXELS = "dicom/rtplan_no_pixels.dcm"


@dataclass
class Case:
    name: str
    file: str  # file name inside the corpus folder
    expect: str
    send: str = "raw"  # raw | multipart
    content_type: str | None = None  # of the raw body, or of the multipart file part
    filename: str = "upload.bin"  # multipart file name (never stored: checked by the PHI test)
    metadata: str | None = None  # multipart 'metadata' part or X-DMask-Metadata header (raw)
    headers: dict[str, str] = field(default_factory=dict)
    extra_parts: list[tuple[str, str]] = field(default_factory=list)  # (name, file in corpus)
    record_id: str | None = None  # URL path segment as sent (already encoded); None: a fresh valid one
    note: str = ""


# --- builders ------------------------------------------------------------------------------------


def _rng(name: str) -> random.Random:
    return random.Random(zlib.crc32(name.encode()))


def flip_bytes(data: bytes, start: int, end: int, count: int, seed: str) -> bytes:
    """``count`` bytes in [start, end) XOR-ed with a non-zero value, positions from a seeded RNG."""
    out = bytearray(data)
    rng = _rng(seed)
    for _ in range(count):
        i = rng.randrange(start, end)
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def jpeg_sof_offset(jpeg: bytes) -> int:
    i = 2
    while i < len(jpeg) - 9:
        if jpeg[i] != 0xFF:
            raise ValueError("not a marker")
        marker = jpeg[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            return i
        i += 2 + struct.unpack_from(">H", jpeg, i + 2)[0]
    raise ValueError("no SOF")


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    out = bytearray(jpeg)
    struct.pack_into(">HH", out, jpeg_sof_offset(jpeg) + 5, height, width)
    return bytes(out)


def jpeg_scan_offset(jpeg: bytes) -> int:
    return jpeg.index(b"\xff\xda")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_zero_image(width: int, height: int, *, text_bomb: int = 0) -> bytes:
    """A real, decodable RGB PNG of black pixels, compressed row by row (no big buffer here)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    idat = bytearray()
    for _ in range(height):
        idat += comp.compress(row)
    idat += comp.flush()
    chunks = PNG_SIG + png_chunk(b"IHDR", ihdr)
    if text_bomb:
        chunks += png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * text_bomb, 9))
    return chunks + png_chunk(b"IDAT", bytes(idat)) + png_chunk(b"IEND", b"")


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIG
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def to_png(jpeg: bytes) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as im:
        im.convert("RGB").save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def to_webp(jpeg: bytes) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as im:
        im.convert("RGB").save(buf, "WEBP", quality=80, method=0)
    return buf.getvalue()


def apng(jpeg: bytes) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(io.BytesIO(jpeg)) as im:
        rgb = im.convert("RGB")
        rgb.save(buf, "PNG", save_all=True, append_images=[rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    return buf.getvalue()


def webp_vp8x_header(width: int, height: int) -> bytes:
    """A VP8X WebP whose canvas claims ``width`` x ``height`` (followed by a tiny VP8L bitstream)."""
    vp8x = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    vp8l = b"\x2f" + b"\0" * 9
    body += b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def short_clip(src: Path, frames: int) -> bytes:
    """The first ``frames`` frames of a real face video, re-encoded (small and quick to mask)."""
    import av

    buf = io.BytesIO()
    with av.open(str(src)) as inp:
        stream_in = inp.streams.video[0]
        with av.open(buf, "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=Fraction(25, 1))
            stream.width, stream.height = stream_in.codec_context.width, stream_in.codec_context.height
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast", "crf": "28", "threads": "1"}
            for i, frame in enumerate(inp.decode(stream_in)):
                if i >= frames:
                    break
                new = frame.reformat(format="yuv420p")
                new.pts = i
                new.time_base = Fraction(1, 25)
                for packet in stream.encode(new):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return buf.getvalue()


def mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    out: dict[bytes, tuple[int, int]] = {}
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8:
            break
        out.setdefault(kind, (pos, size))
        pos += size
    return out


def mp4_faststart(data: bytes) -> bytes:
    """Move moov in front of mdat (fixing chunk offsets), as web encoders do."""
    boxes = mp4_boxes(data)
    mpos, msize = boxes[b"moov"]
    dpos, _ = boxes[b"mdat"]
    if mpos < dpos:
        return data
    moov = bytearray(data[mpos : mpos + msize])
    shift = msize
    i = 0
    while True:
        i = moov.find(b"stco", i)
        if i < 0:
            break
        count = struct.unpack_from(">I", moov, i + 8)[0]
        for k in range(count):
            off = i + 12 + 4 * k
            struct.pack_into(">I", moov, off, struct.unpack_from(">I", moov, off)[0] + shift)
        i += 4
    head = data[:dpos]
    return head + bytes(moov) + data[dpos:mpos] + data[mpos + msize :]


def mp4_set_duration(data: bytes, seconds: int) -> bytes:
    """Patch mvhd/mdhd/tkhd durations (version 0 boxes) to claim ``seconds``."""
    out = bytearray(data)
    for box, ts_off, dur_off in ((b"mvhd", 12 + 8, 16 + 8), (b"mdhd", 12 + 8, 16 + 8)):
        i = out.find(box)
        while i >= 0:
            base = i - 4
            if out[base + 8] == 0:  # version 0
                timescale = struct.unpack_from(">I", out, base + ts_off)[0]
                struct.pack_into(">I", out, base + dur_off, min(0xFFFFFFFF, timescale * seconds))
            i = out.find(box, i + 4)
    return bytes(out)


# --- DICOM ----------------------------------------------------------------------------------------


def dicom_element_offset(data: bytes, tag: tuple[int, int]) -> int:
    return data.index(struct.pack("<HH", *tag))


def dicom_with_length(data: bytes, tag: tuple[int, int], length: int) -> bytes:
    """Explicit VR LE: overwrite the value length of ``tag`` (2- or 4-byte length field)."""
    out = bytearray(data)
    i = dicom_element_offset(data, tag)
    vr = bytes(out[i + 4 : i + 6])
    if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
        struct.pack_into("<I", out, i + 8, length)
    else:
        struct.pack_into("<H", out, i + 6, min(length, 0xFFFF))
    return bytes(out)


def _el(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value


def _file_meta(ts: bytes) -> bytes:
    ts = ts + (b"\0" if len(ts) % 2 else b"")
    sop = b"1.2.840.10008.5.1.4.1.1.7\0"
    inst = b"1.2.3.4.5.6.7.8.9\0"
    body = (
        _el(0x0002, 0x0001, b"OB", b"\0\1")
        + _el(0x0002, 0x0002, b"UI", sop)
        + _el(0x0002, 0x0003, b"UI", inst)
        + _el(0x0002, 0x0010, b"UI", ts)
    )
    return b"\0" * 128 + b"DICM" + _el(0x0002, 0x0000, b"UL", struct.pack("<I", len(body))) + body


def dicom_deflate_bomb(inflated_bytes: int) -> bytes:
    """Deflated Explicit VR LE whose data set inflates to ``inflated_bytes`` (an OB of zeros).

    Built without ever holding the inflated data: after a full flush a deflate compressor starts
    from an empty history, so one compressed 1 MiB block of zeros can be repeated."""
    block = 1 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(
        _el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")
        + struct.pack("<HH", 0x0009, 0x0010)
        + b"OB\0\0"
        + struct.pack("<I", inflated_bytes)
    )
    head += comp.flush(zlib.Z_FULL_FLUSH)
    first = comp.compress(b"\0" * block) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(b"\0" * block) + comp.flush(zlib.Z_FULL_FLUSH)
    assert again == first, "compressor state not reset by Z_FULL_FLUSH"
    tail = comp.flush()
    body = head + first * (inflated_bytes // block) + tail
    return _file_meta(b"1.2.840.10008.1.2.1.99") + body


def dicom_nested_sequences(depth: int) -> bytes:
    """Explicit VR LE data set with ``depth`` nested undefined-length sequences."""
    open_ = b""
    close = b""
    for _ in range(depth):
        open_ += struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
        open_ += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0) + close
    ds = _el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0") + open_ + close
    return _file_meta(b"1.2.840.10008.1.2.1\0") + ds


def dicom_huge_frame(rows: int, cols: int) -> bytes:
    ds = (
        _el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.7\0")
        + _el(0x0008, 0x0018, b"UI", b"1.2.3.4.5.6.7.8.9\0")
        + _el(0x0028, 0x0002, b"US", struct.pack("<H", 1))
        + _el(0x0028, 0x0004, b"CS", b"MONOCHROME2 ")
        + _el(0x0028, 0x0010, b"US", struct.pack("<H", rows))
        + _el(0x0028, 0x0011, b"US", struct.pack("<H", cols))
        + _el(0x0028, 0x0100, b"US", struct.pack("<H", 8))
        + _el(0x0028, 0x0101, b"US", struct.pack("<H", 8))
        + _el(0x0028, 0x0102, b"US", struct.pack("<H", 7))
        + _el(0x0028, 0x0103, b"US", struct.pack("<H", 0))
        + _el(0x7FE0, 0x0010, b"OB", b"\0" * 1024)
    )
    return _file_meta(b"1.2.840.10008.1.2.1\0") + ds


# --- containers -----------------------------------------------------------------------------------


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed: deterministic bytes
            zf.writestr(info, data)
    return buf.getvalue()


HTML = b"<!DOCTYPE html><html><body><script>fetch('/steal?c='+document.cookie)</script></body></html>"


def build(out: Path, shared: Path) -> list[Case]:
    """Write every case's file into ``out`` and return the table."""
    out.mkdir(parents=True, exist_ok=True)
    face = (shared / FACE_JPEG).read_bytes()
    png = to_png(face)
    webp = to_webp(face)
    clip = short_clip(shared / FACE_VIDEO, 6)
    clip_fast = mp4_faststart(clip)
    ct = (shared / DICOM_CT).read_bytes()
    files: dict[str, bytes] = {}
    cases: list[Case] = []

    def add(name: str, data: bytes, expect: str, **kw: Any) -> None:
        fname = kw.pop("file", None) or f"{name}.bin"
        files[fname] = data
        cases.append(Case(name=name, file=fname, expect=expect, **kw))

    scan = jpeg_scan_offset(face)
    # JPEG
    add("jpeg-valid-face", face, "job:succeeded", send="multipart", content_type="image/jpeg")
    add("jpeg-truncated-half", face[: len(face) // 2], "job:failed:truncated")
    add("jpeg-truncated-in-header", face[: min(300, scan)], "http:422:unreadable-media")
    add("jpeg-corrupt-scan-data", flip_bytes(face, scan + 200, len(face) - 2, 40, "jpeg-scan"), "job:done")
    add("jpeg-header-65535x65535", jpeg_with_size(face, 65535, 65535), "http:413:too-many-pixels")
    add("jpeg-header-zero-size", jpeg_with_size(face, 0, 0), "http:422:unreadable-media")
    add("jpeg-magic-then-html", b"\xff\xd8\xff\xe0" + HTML * 20, "http:422:unreadable-media")
    add(
        "jpeg-with-zip-appended",
        face + zip_bytes({"payload.html": HTML}),
        "job:succeeded",
        note="image/ZIP polyglot: decodes as the JPEG; the masked output carries no ZIP",
    )
    # PNG
    add("png-truncated", png[: len(png) * 2 // 3], "job:failed:png")
    add("png-bad-idat-crc", png[:-20] + bytes(b ^ 0x55 for b in png[-20:-12]) + png[-12:], "job:failed:png")
    add("png-bomb-header-20000x20000", png_header_only(20000, 20000), "http:413:too-many-pixels")
    add("png-bomb-real-8001x8000", png_zero_image(8001, 8000), "http:413:too-many-pixels")
    add("png-ztxt-bomb", png_zero_image(64, 64, text_bomb=64 << 20), "http:422:unreadable-media")
    add("png-animated", apng(face), "http:422:multi-frame-image")
    add("png-magic-then-html", PNG_SIG + HTML * 20, "http:422:unreadable-media")
    # WebP
    add("webp-valid-face", webp, "job:succeeded", send="multipart", content_type="application/zip")
    add("webp-truncated", webp[: len(webp) // 2], "http:422:unreadable-media")
    add("webp-header-16383x16383", webp_vp8x_header(16383, 16383), "http:413:too-many-pixels")
    # Video
    add("mp4-truncated-moov-at-end", clip[: len(clip) // 2], "http:422:unreadable-media")
    add("mp4-truncated-faststart", clip_fast[: len(clip_fast) * 2 // 3], "job:failed:truncated")
    add(
        "mp4-claims-10-hours",
        mp4_set_duration(clip_fast, 36000),
        "job:done",
        note="the movie header lies; the duration comes from the sample table (0.24 s), as in masking",
    )
    add("mp4-magic-then-html", clip[:32] + HTML * 20, "http:422:unreadable-media")
    mdat = mp4_boxes(clip_fast)[b"mdat"]
    add(
        "mp4-corrupt-mdat",
        flip_bytes(clip_fast, mdat[0] + 64, mdat[0] + mdat[1], 60, "mp4-mdat"),
        "job:done",
    )
    # DICOM
    add("dicom-truncated", ct[: len(ct) * 3 // 5], "job:failed:remain")
    add("dicom-4gb-length-field", dicom_with_length(ct, (0x0010, 0x0010), 0xFFFFFFF0), "job:failed:remain")
    add(
        "dicom-4gb-pixel-data-length",
        dicom_with_length(ct, (0x7FE0, 0x0010), 0xFFFFFFF0),
        "job:failed:remain",
    )
    add("dicom-deflate-bomb", dicom_deflate_bomb(600 << 20), "job:failed:size limit")
    add("dicom-nested-sequences", dicom_nested_sequences(200), "job:failed:nested too deeply")
    add("dicom-65535x65535-frame", dicom_huge_frame(65535, 65535), "job:failed:size limit")
    add("dicom-magic-then-garbage", b"\0" * 128 + b"DICM" + bytes(_rng("dcm").randbytes(4000)), "job:failed:")
    add("dicom-no-pixel-data", (shared / DICOM_NO_PIXELS).read_bytes(), "job:failed:no image")
    # Not media at all
    add("zero-bytes", b"", "http:415:unsupported-media-type")
    add("gif", b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\0" * 100, "http:415:unsupported-media-type")
    add(
        "gifar",
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\0\0\0" + zip_bytes({"a.class": b"\xca\xfe\xba\xbe"}),
        "http:415:unsupported-media-type",
    )
    add("html", HTML, "http:415:unsupported-media-type", content_type="image/jpeg")
    add("zip-of-photos", zip_bytes({"face.jpg": face}), "http:415:unsupported-media-type")
    add("pdf", b"%PDF-1.7\n" + b"\0" * 1000, "http:415:unsupported-media-type")
    add(
        "svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "http:415:unsupported-media-type",
    )
    # Transport: content types, multipart abuse
    add("png-sent-as-text-html", png, "job:succeeded", content_type="text/html")
    add(
        "multipart-without-boundary",
        face,
        "http:400:bad-multipart",
        content_type="multipart/form-data",
    )
    add(
        "multipart-wrong-boundary",
        b'--other\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + face + b"\r\n--other--\r\n",
        "http:400:bad-multipart",
        content_type="multipart/form-data; boundary=expected",
    )
    files["big-metadata.json"] = json.dumps({"description": "x" * 100_000}).encode()
    add(
        "multipart-metadata-100k",
        face,
        "http:413:metadata-too-large",
        send="multipart",
        extra_parts=[("metadata", "big-metadata.json")],
    )
    files["junk-200k.bin"] = b"j" * 200_000
    add(
        "multipart-unknown-field-200k",
        face,
        "http:422:bad-multipart",
        send="multipart",
        extra_parts=[("junk", "junk-200k.bin")],
    )
    add(
        "multipart-two-files",
        face,
        "http:422:bad-multipart",
        send="multipart",
        extra_parts=[("file", "jpeg-valid-face.bin")],
    )
    add(
        "multipart-filename-100k",
        face,
        "http:400:bad-multipart",
        send="multipart",
        filename="a" * 100_000 + ".jpg",
        note="python-multipart refuses header lines over 4 KiB itself; the service caps them too",
    )
    files["tiny.txt"] = b"x"
    add(
        "multipart-many-parts",
        face,
        "http:422:bad-multipart",
        send="multipart",
        extra_parts=[(f"p{i}", "tiny.txt") for i in range(20)],
    )
    add(
        "multipart-traversal-filename",
        face,
        "job:succeeded",
        send="multipart",
        filename="../../../../etc/passwd\u202egpj.exe",
        note="the file name is never used: keys are random",
    )
    # Record IDs (path) and headers
    for name, rid, status in (
        ("record-id-encoded-traversal", "..%2F..%2Fetc%2Fpasswd", "http:4xx:"),
        ("record-id-backslash", "..%5C..%5Cwindows", "http:422:invalid-record-id"),
        ("record-id-8k", "R" * 8192, "http:422:invalid-record-id"),
        ("record-id-nul", "MRN%00x", "http:422:invalid-record-id"),
        ("record-id-rtl-override", "MRN%E2%80%AE1234", "http:422:invalid-record-id"),
        ("record-id-zero-width", "MRN%E2%80%8B1", "http:422:invalid-record-id"),
    ):
        add(name, face, status, record_id=rid)
    add(
        "idempotency-key-control-char",
        face,
        "http:422:invalid-idempotency-key",
        headers={"Idempotency-Key": "a\tb"},
    )
    add(
        "idempotency-key-overlong",
        face,
        "http:422:invalid-idempotency-key",
        headers={"Idempotency-Key": "k" * 300},
    )
    # Unicode tricks in metadata
    for name, text, expect in (
        ("metadata-rtl-override", "eye \u202eDO\u202c photo", "http:422:validation"),
        ("metadata-bidi-isolate", "eye \u2067x\u2069", "http:422:validation"),
        ("metadata-zero-width-space", "ey\u200be", "http:422:validation"),
        ("metadata-bom", "\ufeffeye", "http:422:validation"),
        ("metadata-nul", "eye\u0000photo", "http:422:validation"),
        ("metadata-c1-control", "eye\u0085photo", "http:422:validation"),
        ("metadata-escape-sequence", "eye\u001b[31mred", "http:422:validation"),
        ("metadata-persian-zwnj", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "job:succeeded"),
        ("metadata-emoji-zwj", "\U0001f441\u200d\U0001f5e8 right eye", "job:succeeded"),
    ):
        add(
            name,
            face,
            expect,
            send="multipart",
            metadata=json.dumps({"description": text, "laterality": "OD"}),
        )
    add(
        "metadata-lone-surrogate",
        face,
        "http:422:validation",
        send="multipart",
        metadata='{"description": "eye \\ud800 photo"}',
    )
    add(
        "metadata-header-invalid-json",
        face,
        "http:422:validation",
        metadata="{not json",
    )
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / "cases.json").write_text(json.dumps([asdict(c) for c in cases], indent=1, ensure_ascii=True))
    return cases


def load(out: Path) -> list[Case]:
    return [Case(**c) for c in json.loads((out / "cases.json").read_text())]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    default_shared = os.environ.get(
        "DMASK_SHARED_DATA", str(Path(__file__).resolve().parents[3] / "shared/data")
    )
    p.add_argument("--shared", type=Path, default=Path(default_shared))
    args = p.parse_args(argv)
    cases = build(args.out, args.shared)
    for c in cases:
        print(f"{c.name:36s} {c.expect:40s} {(args.out / c.file).stat().st_size:>10d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
