"""Test-data builders for the media layer.

Nothing large is committed: inputs are built here, at test time, from the shared read-only data
(``DMASK_SHARED_DATA``, default ``<repo>/../shared/data``) or from synthetic pixels.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageCms

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    return Path(os.environ.get("DMASK_SHARED_DATA", REPO.parent / "shared" / "data"))


# --------------------------------------------------------------------------------------- photos


def marker_image(width: int = 120, height: int = 80) -> np.ndarray:
    """Grey image with a red block in the stored top-left corner (to see where 'up' went)."""
    rgb = np.full((height, width, 3), 128, np.uint8)
    rgb[: height // 4, : width // 4] = (255, 0, 0)
    return rgb


def srgb_icc_bytes() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return bytes(profile.tobytes())


def swapped_primaries_icc() -> bytes:
    """An sRGB profile with its red and green primaries swapped: (255, 0, 0) in it is green."""
    icc = bytearray(srgb_icc_bytes())
    count = struct.unpack_from(">I", icc, 128)[0]
    entries = {bytes(icc[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    red_ref, green_ref = icc[red + 4 : red + 12], icc[green + 4 : green + 12]  # (offset, size)
    icc[red + 4 : red + 12], icc[green + 4 : green + 12] = green_ref, red_ref
    return bytes(icc)


XMP_PACKET = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>DR-XMP-SECRET</dc:creator>'
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def jpeg_with_everything(rgb: np.ndarray, orientation: int = 6) -> bytes:
    """JPEG carrying EXIF (Make/Model/Orientation/GPS), a COM comment, XMP and an ICC profile."""
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x010F] = "SECRETMAKE"  # Make
    exif[0x0110] = "SECRETMODEL"  # Model
    exif[0x0112] = orientation  # Orientation
    exif[0x010E] = "PATIENT-EXIF-DESCRIPTION"  # ImageDescription
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    buf = io.BytesIO()
    im.save(
        buf,
        "JPEG",
        quality=95,
        exif=exif,
        comment=b"PATIENT-COMMENT-SECRET",
        xmp=XMP_PACKET,
        icc_profile=srgb_icc_bytes(),
    )
    return buf.getvalue()


def png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG, in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, types = 8, []
    while pos + 8 <= len(data):
        length, typ = struct.unpack(">I4s", data[pos : pos + 8])
        types.append(typ)
        pos += 12 + length
    return types


def png_chunk(typ: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + typ + payload + struct.pack(">I", zlib.crc32(typ + payload))


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares ``width x height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    chunks = png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def jpeg_declaring(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 declares ``width x height`` (16-bit fields: 65535 at most) and no data."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(
        struct.pack(">BBB", i, 0x11, 0) for i in (1, 2, 3)
    )
    segment = b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
    return b"\xff\xd8" + segment + b"\xff\xd9"


def jpeg_marker_segments(data: bytes) -> list[int]:
    """JPEG marker bytes (0xE0 APP0, 0xFE COM, ...) before the scan data."""
    pos, markers = 2, []
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        pos += 2 + length
    return markers


# --------------------------------------------------------------------------------------- videos


def read_frames(path: Path, count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """First ``count`` frames of a video as RGB (optionally resized to (w, h)), via PyAV directly."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1])
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def build_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 25,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation_ccw: int = 0,
    hflip: bool = False,
    audio: bool = False,
    metadata: dict[str, str] | None = None,
    stream_metadata: dict[str, str] | None = None,
    container_format: str = "mp4",
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    bframes: bool = True,
) -> Path:
    """Encode frames with PyAV the way a phone or camera file might look.

    ``rotation_ccw`` is PyAV's display rotation (counter-clockwise degrees); ``pts`` in
    ``time_base`` allows variable frame rate; ``audio`` adds a 440 Hz AAC track.
    """
    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=container_format, options=options or {}) as c:
        if metadata:
            c.metadata.update(metadata)
        vs = c.add_stream(codec, rate=fps)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv420p"
        tb = time_base or Fraction(1, fps)
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if codec == "libx264":
            vs.options = {"preset": "veryfast", "bf": "3" if bframes else "0"}
        if stream_metadata:
            vs.metadata.update(stream_metadata)
        if rotation_ccw or hflip:
            vs.set_display_rotation(rotation_ccw, hflip=hflip)
        aus = None
        if audio:
            aus = c.add_stream("aac", rate=48000)
            aus.layout = "mono"
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = pts[i] if pts is not None else i
            vf.time_base = tb
            for packet in vs.encode(vf):
                c.mux(packet)
        for packet in vs.encode():
            c.mux(packet)
        if aus is not None:
            seconds = len(frames) / fps
            n = int(48000 * seconds)
            t = np.arange(n) / 48000
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, n, 1024):
                chunk = samples[start : start + 1024]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                af.sample_rate = 48000
                af.pts = start
                for packet in aus.encode(af):
                    c.mux(packet)
            for packet in aus.encode():
                c.mux(packet)
    return path


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())
