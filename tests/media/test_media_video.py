"""Video probing, upright decoding and clean re-encoding."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from media_builders import build_mp4, mean_abs_diff, read_frames

from models.media import MediaError, MediaType, VideoWriter, _bmff, iter_frames, probe_video, sniff

SECRETS = (b"PATIENT", b"+48.8584", b"loci", b"\xa9xyz", b"Lavf", b"Lavc", b"x264", b"HandBrake")


@pytest.fixture(scope="module")
def upright(shared: Path) -> list[np.ndarray]:
    """20 real frames (192x144, a face), as a viewer shows them."""
    return read_frames(shared / "videos" / "livep_s18.mp4", 20, size=(192, 144))


def copy_through(src: Path, dst: Path) -> list[Any]:
    """What the mask pipeline does, minus the masking: decode every frame and write it back."""
    info = probe_video(src)
    frames = []
    with VideoWriter.for_video(dst, info) as writer:
        for frame in iter_frames(src, info=info):
            writer.write(frame.image, frame.pts, frame.duration)
            frames.append(frame)
    return frames


def build_phone_video(path: Path, upright: list[np.ndarray], container_format: str) -> Path:
    """Portrait-style file: pixels stored rotated, display matrix to turn them back, audio, metadata."""
    stored = [np.ascontiguousarray(np.rot90(f, 1)) for f in upright]  # stored turned 90 degrees ccw
    return build_mp4(
        path,
        stored,
        fps=25,
        rotation_ccw=-90,  # display = rotate 90 degrees clockwise
        audio=True,
        container_format=container_format,
        metadata={
            "creation_time": "2024-01-02T03:04:05Z",
            "location": "+48.8584+002.2945/",
            "title": "PATIENT-TITLE",
            "comment": "PATIENT-COMMENT",
        },
        stream_metadata={"creation_time": "2024-01-02T03:04:05Z", "handler_name": "PATIENT-HANDLER"},
    )


# ------------------------------------------------------------------------------------ probing


def test_probe_matches_the_manifest_for_every_shared_video(shared: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["videos"]:
        info = probe_video(shared / entry["path"])
        assert (info.width, info.height) == (entry["width"], entry["height"]), entry["path"]
        assert info.frame_count == entry["frames"]
        assert float(info.fps) == pytest.approx(entry["fps"], abs=0.01)
        assert info.duration_s == pytest.approx(entry["seconds"], abs=0.05)
        assert info.has_audio == entry["has_audio"]
        assert info.codec == entry["codec"]
        assert info.rotation == 0 and info.media_type is MediaType.MP4


def test_probe_refuses_videos_over_the_duration_cap(shared: Path) -> None:
    with pytest.raises(MediaError, match="limit"):
        probe_video(shared / "videos" / "livep_d0.mp4", max_duration_s=2.0)


def test_probe_refuses_videos_over_the_pixel_cap(shared: Path) -> None:
    with pytest.raises(MediaError, match="pixel limit"):
        probe_video(shared / "videos" / "livep_s18.mp4", max_pixels=640 * 480)


@pytest.mark.parametrize("content", [b"<html><body>x</body></html>", b"\xff\xd8\xff\xe0JFIF", b""])
def test_non_videos_are_refused_without_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "Doe_John_MRN123.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError) as err:
        probe_video(path)
    assert "Doe_John" not in str(err.value) and str(tmp_path) not in str(err.value)


# ----------------------------------------------------------------------------------- decoding


def test_b_frame_video_decodes_every_frame_in_presentation_order(shared: Path) -> None:
    path = shared / "videos" / "livep_d0.mp4"  # H.264 High profile with B-frames
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.has_b_frames
    info = probe_video(path)
    frames = list(iter_frames(path, info=info))
    assert len(frames) == info.frame_count == 78
    assert [f.index for f in frames] == list(range(78))
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:], strict=False))
    assert frames[0].pts == 0
    assert frames[-1].time == pytest.approx(77 / 25, abs=1e-3)
    assert frames[0].image.shape == (512, 512, 3) and frames[0].image.dtype == np.uint8


def test_rotated_video_is_yielded_upright(tmp_path: Path, upright: list[np.ndarray]) -> None:
    path = build_phone_video(tmp_path / "phone.mp4", upright, "mp4")
    info = probe_video(path)
    assert (info.coded_width, info.coded_height) == (144, 192)
    assert (info.width, info.height, info.rotation) == (192, 144, 90)
    frames = list(iter_frames(path, info=info))
    assert len(frames) == len(upright)
    assert mean_abs_diff(frames[5].image, upright[5]) < 6


@pytest.mark.parametrize("clockwise", [90, 180, 270])
def test_every_right_angle_display_rotation_is_undone(
    tmp_path: Path, upright: list[np.ndarray], clockwise: int
) -> None:
    stored = [np.ascontiguousarray(np.rot90(f, clockwise // 90)) for f in upright[:4]]
    path = build_mp4(tmp_path / "r.mp4", stored, rotation_ccw=-clockwise)
    info = probe_video(path)
    assert (info.rotation, info.mirrored) == (clockwise, False)
    assert mean_abs_diff(next(iter_frames(path, info=info)).image, upright[0]) < 6


def test_mirroring_display_matrix_is_undone(tmp_path: Path, upright: list[np.ndarray]) -> None:
    stored = [np.ascontiguousarray(f[:, ::-1]) for f in upright[:4]]
    path = build_mp4(tmp_path / "m.mp4", stored, hflip=True)
    info = probe_video(path)
    assert info.mirrored
    assert mean_abs_diff(next(iter_frames(path, info=info)).image, upright[0]) < 6


def test_other_containers_decode(tmp_path: Path, upright: list[np.ndarray]) -> None:
    cases = [("avi", "mpeg4", MediaType.AVI), ("matroska", "libx264", MediaType.MKV)]
    cases.append(("webm", "libvpx-vp9", MediaType.WEBM))
    for fmt, codec, expected in cases:
        path = build_mp4(tmp_path / f"clip.{fmt}", upright, container_format=fmt, codec=codec)
        info = probe_video(path)
        assert info.media_type is expected
        frames = list(iter_frames(path, info=info))
        assert len(frames) == len(upright), fmt
        assert mean_abs_diff(frames[3].image, upright[3]) < 12, fmt


def test_truncated_mp4_with_index_at_the_end_is_refused(tmp_path: Path, shared: Path) -> None:
    data = (shared / "videos" / "livep_d0.mp4").read_bytes()  # moov after mdat
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError):
        probe_video(cut)
    with pytest.raises(MediaError):
        list(iter_frames(cut))


def test_truncated_mp4_with_index_up_front_is_refused(tmp_path: Path, shared: Path) -> None:
    data = (shared / "videos" / "livep_s18.mp4").read_bytes()  # moov before mdat
    assert data[36:40] == b"moov"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        probe_video(cut)
    with pytest.raises(MediaError, match="truncated"):
        list(iter_frames(cut))


@pytest.mark.parametrize(
    "payload", [b"<html><body><script>alert(1)</script></body></html>", b"PK\x03\x04" + b"\x00" * 64]
)
def test_mp4_signature_in_front_of_other_content_is_refused(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "polyglot.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41" + payload * 20)
    assert sniff(path.read_bytes()) is MediaType.MP4
    with pytest.raises(MediaError):
        probe_video(path)


def test_header_only_mp4_is_refused(tmp_path: Path, shared: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes((shared / "videos" / "livep_d0.mp4").read_bytes()[:200])
    with pytest.raises(MediaError):
        probe_video(cut)


def test_corrupted_videos_either_decode_or_raise_media_error_quickly(
    tmp_path: Path, upright: list[np.ndarray]
) -> None:
    seeds = [
        build_mp4(tmp_path / "a.mp4", upright[:8], audio=True).read_bytes(),
        build_mp4(tmp_path / "b.mp4", upright[:8], options={"movflags": "+faststart"}).read_bytes(),
        build_mp4(tmp_path / "c.mkv", upright[:8], container_format="matroska").read_bytes(),
    ]
    rng = np.random.default_rng(7)
    case = tmp_path / "case.bin"
    outcomes = {"decoded": 0, "refused": 0}
    started = time.monotonic()
    for i in range(60):
        data = bytearray(seeds[i % len(seeds)])
        if i % 2:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 20))):
                data[int(pos)] = int(rng.integers(0, 256))
        case.write_bytes(bytes(data))
        try:
            list(iter_frames(case))
            outcomes["decoded"] += 1
        except MediaError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 10
    assert time.monotonic() - started < 60


# ----------------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("container_format", ["mp4", "mov"])
def test_output_has_no_audio_and_no_metadata(
    tmp_path: Path, upright: list[np.ndarray], container_format: str
) -> None:
    src = build_phone_video(tmp_path / f"phone.{container_format}", upright, container_format)
    raw = src.read_bytes()
    assert b"PATIENT-TITLE" in raw and (b"loci" in raw or b"\xa9xyz" in raw)  # input really has it
    with av.open(str(src)) as c:
        assert c.streams.audio and "creation_time" in c.metadata

    out = tmp_path / "out.mp4"
    copy_through(src, out)

    data = out.read_bytes()
    for secret in SECRETS:
        assert secret not in data, secret
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]
        assert set(c.metadata) <= {"major_brand", "minor_version", "compatible_brands"}
        assert "creation_time" not in c.streams.video[0].metadata
        assert set(c.streams.video[0].metadata) <= {"language", "handler_name"}


def test_output_keeps_frame_count_rate_and_duration(tmp_path: Path, upright: list[np.ndarray]) -> None:
    src = build_phone_video(tmp_path / "phone.mp4", upright, "mp4")
    out = tmp_path / "out.mp4"
    copy_through(src, out)
    a, b = probe_video(src), probe_video(out)
    assert b.frame_count == a.frame_count == len(upright)
    assert b.fps == a.fps
    assert b.duration_s == pytest.approx(a.duration_s, abs=float(1 / a.fps))
    assert sniff(out.read_bytes()[:4096]) is MediaType.MP4


def test_output_of_rotated_input_displays_the_same_way(tmp_path: Path, upright: list[np.ndarray]) -> None:
    src = build_phone_video(tmp_path / "phone.mp4", upright, "mp4")
    out = tmp_path / "out.mp4"
    copy_through(src, out)
    info = probe_video(out)
    assert (info.width, info.height, info.rotation) == (192, 144, 0)  # upright pixels, no matrix
    frames = list(iter_frames(out, info=info))
    assert mean_abs_diff(frames[5].image, upright[5]) < 8


def test_odd_sized_video_round_trips_with_its_size(tmp_path: Path, upright: list[np.ndarray]) -> None:
    frames = [np.ascontiguousarray(np.pad(f, ((0, 241 - 144), (0, 321 - 192), (0, 0)), mode="reflect"))
              for f in upright[:8]]  # fmt: skip
    frames = [f[:241, :321] for f in frames]
    for f in frames:
        f[:, -1] = (0, 0, 255)  # the last column and row are real content, not padding
        f[-1, :] = (0, 255, 0)
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 25, 321, 241) as writer:
        for f in frames:
            writer.write(np.ascontiguousarray(f))
    info = probe_video(path)
    assert (info.width, info.height) == (321, 241)
    decoded = list(iter_frames(path, info=info))
    assert len(decoded) == 8
    assert decoded[0].image.shape == (241, 321, 3)
    assert mean_abs_diff(decoded[4].image, frames[4]) < 6
    assert decoded[4].image[100, -1, 2] > 200 and decoded[4].image[-1, 100, 1] > 200


def test_output_puts_the_index_before_the_media_data(tmp_path: Path, upright: list[np.ndarray]) -> None:
    path = tmp_path / "fast.mp4"
    with VideoWriter(path, 25, 191, 143) as writer:  # odd: the clap box is added after muxing
        for f in upright[:4]:
            writer.write(np.ascontiguousarray(f[:143, :191]))
    data = path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # playable while downloading


@pytest.mark.parametrize("faststart", [False, True])
def test_clean_aperture_can_be_added_to_either_mp4_layout(
    tmp_path: Path, upright: list[np.ndarray], faststart: bool
) -> None:
    options = {"movflags": "+faststart"} if faststart else {}
    path = build_mp4(tmp_path / "even.mp4", upright[:6], options=options)
    _bmff.write_clean_aperture(path, 191, 143)
    assert _bmff.read_clean_aperture(path) == _bmff.CropRect(0, 0, 191, 143)
    frames = list(iter_frames(path))
    assert len(frames) == 6
    assert mean_abs_diff(frames[3].image, upright[3][:143, :191]) < 6


def test_variable_frame_rate_timestamps_are_kept(tmp_path: Path, upright: list[np.ndarray]) -> None:
    pts_ms = [0, 40, 80, 200, 240, 280, 500, 533, 566, 600, 900, 940]
    src = build_mp4(
        tmp_path / "vfr.mp4", upright[: len(pts_ms)], fps=25, pts=pts_ms, time_base=Fraction(1, 1000)
    )
    decoded = list(iter_frames(src))
    assert [round(f.time * 1000) for f in decoded] == pts_ms
    out = tmp_path / "out.mp4"
    copy_through(src, out)
    again = list(iter_frames(out))
    assert [round(f.time * 1000) for f in again] == pts_ms


def test_writer_spaces_frames_at_the_frame_rate_by_default(tmp_path: Path, upright: list[np.ndarray]) -> None:
    path = tmp_path / "cfr.mp4"
    with VideoWriter(path, Fraction(30000, 1001), 192, 144) as writer:
        for f in upright[:10]:
            writer.write(f)
    info = probe_video(path)
    assert info.fps == Fraction(30000, 1001)
    times = [f.time for f in iter_frames(path, info=info)]
    assert times == pytest.approx([i * 1001 / 30000 for i in range(10)], abs=1e-4)


def test_writer_can_store_a_display_rotation(tmp_path: Path, upright: list[np.ndarray]) -> None:
    path = tmp_path / "rot.mp4"
    stored = [np.ascontiguousarray(np.rot90(f, 1)) for f in upright[:4]]
    with VideoWriter(path, 25, 144, 192, rotation=90) as writer:
        for f in stored:
            writer.write(f)
    info = probe_video(path)
    assert info.rotation == 90
    assert mean_abs_diff(next(iter_frames(path, info=info)).image, upright[0]) < 6


def test_writer_rejects_frames_of_the_wrong_shape(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "x.mp4", 25, 64, 48) as writer:
        with pytest.raises(ValueError):
            writer.write(np.zeros((64, 48, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((48, 64, 3), np.float32))
        writer.write(np.zeros((48, 64, 3), np.uint8))


def test_writer_rejects_timestamps_that_do_not_increase(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "x.mp4", 25, 64, 48) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8), pts=5)
        with pytest.raises(ValueError):
            writer.write(np.zeros((48, 64, 3), np.uint8), pts=5)


def test_writer_deletes_the_partial_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, 25, 64, 48) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("masking failed")
    assert not path.exists()


def test_writer_without_frames_raises_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    with pytest.raises(ValueError, match="no frames"), VideoWriter(path, 25, 64, 48):
        pass
    assert not path.exists()


@pytest.mark.slow
def test_every_shared_video_round_trips(tmp_path: Path, shared: Path, manifest: dict[str, Any]) -> None:
    for entry in manifest["videos"]:
        src = shared / entry["path"]
        out = tmp_path / "out.mp4"
        copy_through(src, out)
        a, b = probe_video(src), probe_video(out)
        assert b.frame_count == a.frame_count, entry["path"]
        assert b.fps == a.fps
        assert b.duration_s == pytest.approx(a.duration_s, abs=float(1 / a.fps))
        assert (b.width, b.height) == (a.width, a.height)
        assert not b.has_audio
