"""Contract of FacePerception and its building blocks: shapes, batching, tracking ROIs, weights
integrity, and the ``dmask landmarks`` drawing command."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from perception_support import load_rgb

from models.perception import Detection, FaceLandmarks, FacePerception, Roi
from models.perception.detection import FULL_RANGE, SHORT_RANGE, ssd_anchor_centers, weighted_nms
from models.perception.draw_cli import landmarks_command
from models.perception.graph import build
from models.perception.weights import WEIGHTS_DIR, WeightsError

PORTRAIT = "faces/angelina_jolie/2.jpg"
GROUP = "faces/_groups/obama_biden_oval_office.jpg"


@pytest.fixture(scope="module")
def portrait(shared_data: Path) -> np.ndarray:
    return load_rgb(shared_data / PORTRAIT)


@pytest.fixture(scope="module")
def group(shared_data: Path) -> np.ndarray:
    return load_rgb(shared_data / GROUP)


def test_anchor_counts_match_the_networks() -> None:
    assert ssd_anchor_centers(SHORT_RANGE).shape == (896, 2)
    assert ssd_anchor_centers(FULL_RANGE).shape == (2304, 2)
    a = ssd_anchor_centers(SHORT_RANGE)
    # 16x16 grid, 2 anchors per cell first (stride 8), then 8x8 with 6 per cell
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(a[512], [0.5 / 8, 0.5 / 8]) and np.allclose(a[518], [1.5 / 8, 0.5 / 8])


def test_weighted_nms_averages_overlapping_boxes() -> None:
    dets = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.8], np.float32)
    out, out_scores = weighted_nms(dets, scores, 0.3)
    assert out_scores.tolist() == pytest.approx([0.9, 0.8])
    assert out[0] == pytest.approx((dets[0] * 0.9 + dets[1] * 0.6) / 1.5)
    assert out[1] == pytest.approx(dets[2])


def test_result_types_and_shapes(perception: FacePerception, portrait: np.ndarray) -> None:
    (faces,) = perception(portrait)
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, FaceLandmarks) and isinstance(face.detection, Detection)
    assert isinstance(face.roi, Roi)
    assert face.mesh.shape == (468, 3) and face.mesh.dtype == np.float32
    assert face.eye_contours.shape == (2, 71, 3) and face.iris.shape == (2, 5, 3)
    assert face.detection.box.shape == (4,) and face.detection.keypoints.shape == (6, 2)
    assert 0.5 <= face.detection.score <= 1 and 0.5 < face.presence <= 1
    h, w = portrait.shape[:2]
    assert (face.mesh[:, 0] > 0).all() and (face.mesh[:, 0] < w).all()
    assert (face.mesh[:, 1] > 0).all() and (face.mesh[:, 1] < h).all()
    # eye 0 is the subject's right eye: on the image's left, between mesh corners 33 and 133
    assert face.iris[0, 0, 0] < face.iris[1, 0, 0]
    right_eye_mid = (face.mesh[33, :2] + face.mesh[133, :2]) / 2
    left_eye_mid = (face.mesh[362, :2] + face.mesh[263, :2]) / 2
    eye_width = np.linalg.norm(face.mesh[33, :2] - face.mesh[133, :2])
    assert np.linalg.norm(face.iris[0, 0, :2] - right_eye_mid) < 0.5 * eye_width
    assert np.linalg.norm(face.iris[1, 0, :2] - left_eye_mid) < 0.5 * eye_width


def test_batched_equals_single(perception: FacePerception, portrait: np.ndarray, group: np.ndarray) -> None:
    """Frames of different sizes in one batch give the same results as one at a time."""
    batched = perception([portrait, group, portrait])
    single = [perception(portrait)[0], perception(group)[0], perception(portrait)[0]]
    for b, s in zip(batched, single, strict=True):
        assert len(b) == len(s)
        for fb, fs in zip(b, s, strict=True):
            assert fb.detection is not None and fs.detection is not None
            assert np.allclose(fb.detection.box, fs.detection.box, atol=1e-2)
            assert np.allclose(fb.mesh, fs.mesh, atol=1e-2)
            assert np.allclose(fb.iris, fs.iris, atol=1e-2)
    assert perception([]) == [] and perception.detect([]) == []
    assert perception.landmarks([portrait], [[]]) == [[]]


def test_roi_from_mesh_tracks_the_face(perception: FacePerception, portrait: np.ndarray) -> None:
    """The mesh-derived ROI is close to the detection ROI and re-running the mesh from it (the
    video tracking loop) reproduces the same landmarks."""
    face = perception(portrait)[0][0]
    roi = perception.roi_from_mesh(face.mesh)
    assert math.hypot(roi.cx - face.roi.cx, roi.cy - face.roi.cy) < 0.15 * face.roi.size
    assert 0.7 < roi.size / face.roi.size < 1.4
    assert abs(roi.rotation - face.roi.rotation) < 0.15
    tracked = perception.landmarks([portrait], [[roi]])[0][0]
    assert tracked.detection is None and tracked.presence > 0.9
    eye_size = np.linalg.norm(face.mesh[33, :2] - face.mesh[133, :2])
    assert np.linalg.norm(tracked.iris[:, 0, :2] - face.iris[:, 0, :2], axis=1).max() < 0.1 * eye_size
    assert np.linalg.norm(tracked.mesh[:, :2] - face.mesh[:, :2], axis=1).mean() < 0.05 * face.roi.size


def test_rotated_face_roi_follows_the_eyes(perception: FacePerception, portrait: np.ndarray) -> None:
    """A head tilted by 25 degrees gets a ROI rotated by 25 degrees (eye line horizontal in the
    crop), and the landmarks follow the rotation. (Like MediaPipe's detector, ours is trained on
    roughly upright faces: larger in-plane rotations are the tracker's job, via roi_from_mesh.)"""
    face = perception(portrait)[0][0]
    h, w = portrait.shape[:2]
    angle = 25.0
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)  # negative: clockwise in the image
    rotated = cv2.warpAffine(portrait, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    rface = perception(rotated)[0][0]
    # cv2 maps pixel centres; our coordinates are continuous (centre of pixel i is i + 0.5)
    iris = face.iris[:, 0, :2] - 0.5
    expected = iris @ m[:, :2].T + m[:, 2] + 0.5
    eye_width = float(np.linalg.norm(face.mesh[33, :2] - face.mesh[133, :2]))
    assert np.linalg.norm(rface.iris[:, 0, :2] - expected, axis=1).max() < 0.1 * eye_width
    delta = (rface.roi.rotation - face.roi.rotation + math.pi) % (2 * math.pi) - math.pi
    assert delta == pytest.approx(math.radians(angle), abs=0.08)


def test_landmarks_argument_checks(perception: FacePerception, portrait: np.ndarray) -> None:
    roi = Roi(cx=100.0, cy=100.0, size=80.0, rotation=0.0)
    with pytest.raises(ValueError):
        perception.landmarks([portrait], [[roi], [roi]])
    with pytest.raises(ValueError):
        perception.landmarks([portrait], [[roi]], detections=[[None, None]])
    with pytest.raises(ValueError):
        perception.detect([portrait.astype(np.float32)])


def test_weights_are_checksum_verified(tmp_path: Path) -> None:
    for f in WEIGHTS_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    build("iris_landmark", tmp_path)  # intact copy loads
    data = bytearray((tmp_path / "iris_landmark.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "iris_landmark.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum"):
        build("iris_landmark", tmp_path)
    (tmp_path / "face_landmark.json").write_text("{}")
    with pytest.raises(WeightsError, match="checksum"):
        build("face_landmark", tmp_path)


def test_weights_notice_and_license_are_bundled() -> None:
    notice = (WEIGHTS_DIR / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "mediapipe==0.10.21" in notice
    assert "Apache License" in (WEIGHTS_DIR / "LICENSE-mediapipe.txt").read_text()
    listed = {line.split()[1] for line in (WEIGHTS_DIR / "CHECKSUMS.sha256").read_text().splitlines()}
    assert {p.name for p in WEIGHTS_DIR.iterdir()} - {"CHECKSUMS.sha256"} == listed


def test_draw_cli_photo(shared_data: Path, tmp_path: Path) -> None:
    out, js = tmp_path / "out.png", tmp_path / "out.json"
    assert landmarks_command([str(shared_data / GROUP), "-o", str(out), "--json", str(js)]) == 0
    assert out.stat().st_size > 0
    record: dict[str, Any] = json.loads(js.read_text())
    assert record["kind"] == "photo" and len(record["frames"][0]["faces"]) == 2
    face = record["frames"][0]["faces"][0]
    assert len(face["mesh"]) == 468 and len(face["iris"]) == 2 and len(face["iris"][0]) == 5


def test_draw_cli_video(portrait: np.ndarray, tmp_path: Path) -> None:
    src, out, js = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "out.json"
    frame = np.ascontiguousarray(portrait[: portrait.shape[0] // 2 * 2, : portrait.shape[1] // 2 * 2])
    with av.open(str(src), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
        for _ in range(5):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    assert landmarks_command([str(src), "-o", str(out), "--json", str(js), "--batch-size", "2"]) == 0
    with av.open(str(out)) as container:
        vs = container.streams.video[0]
        assert vs.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(vs)) == 5
    record = json.loads(js.read_text())
    assert record["kind"] == "video" and [len(f["faces"]) for f in record["frames"]] == [1] * 5


def test_draw_cli_rejects_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"not media")
    assert landmarks_command([str(bad), "-o", str(tmp_path / "o.mp4")]) == 2
    assert landmarks_command([str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "o.png")]) == 2
