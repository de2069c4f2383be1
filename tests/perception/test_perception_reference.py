"""Our PyTorch networks and pipeline against the original TFLite models run by LiteRT.

Two levels:
- raw: identical input tensors into both implementations -> outputs equal to float tolerance;
- pipeline: an independent numpy/OpenCV re-implementation of the reference pre/post-processing
  (cv2 letterbox/warpAffine crops, anchors, decoding, projection) driving the TFLite models, compared
  with FacePerception's results: detection IoU > 0.9, mesh and iris within 0.5 px mean at the
  network's input resolution.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from perception_support import REFERENCE_PHOTOS, load_rgb

from models.perception import FacePerception
from models.perception import roi as roi_ops
from models.perception.types import Roi

litert = pytest.importorskip("ai_edge_litert.interpreter")


class TFLite:
    """One LiteRT interpreter; NHWC float32 batch in, outputs in model order out (one sample at a
    time: the models have a fixed batch of 1)."""

    def __init__(self, path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interp = litert.Interpreter(model_path=str(path), num_threads=2)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.outs = [d["index"] for d in self.interp.get_output_details()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        results: list[list[np.ndarray]] = [[] for _ in self.outs]
        for sample in x:
            self.interp.set_tensor(self.inp, np.ascontiguousarray(sample[None], dtype=np.float32))
            self.interp.invoke()
            for i, o in enumerate(self.outs):
                results[i].append(self.interp.get_tensor(o)[0].copy())
        return [np.stack(r) for r in results]


@pytest.fixture(scope="module")
def tflite(tflite_dir: Path) -> dict[str, TFLite]:
    return {
        "full": TFLite(tflite_dir / "face_detection_full_range_sparse.tflite"),
        "short": TFLite(tflite_dir / "face_detection_short_range.tflite"),
        "mesh": TFLite(tflite_dir / "face_landmark.tflite"),
        "iris": TFLite(tflite_dir / "iris_landmark.tflite"),
    }


@pytest.fixture(scope="module")
def short_perception() -> FacePerception:
    return FacePerception(detector="short")


@pytest.fixture(scope="module")
def iris_perception() -> FacePerception:
    """The face_landmark + iris_landmark networks that LiteRT can run (the default attention mesh is
    checked against MediaPipe's runtime in test_attention_mesh.py), with their own iris reading and
    crops sampled as MediaPipe's runtime samples them: the reference pipeline has no fit to the picture
    and no antialiasing."""
    return FacePerception(eyes="iris", fit_iris=False, antialias=False)


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> dict[str, np.ndarray]:
    return {p: load_rgb(shared_data / p) for p in REFERENCE_PHOTOS}


def _nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _assert_close(ours: torch.Tensor, ref: np.ndarray, what: str) -> float:
    got = ours.numpy().reshape(ref.shape)
    err = float(np.abs(got - ref).max())
    scale = float(np.abs(ref).max())
    assert err <= 1e-4 * max(scale, 1.0) + 1e-4, f"{what}: max |diff| {err} (max |ref| {scale})"
    return err


# -- independent reference pre/post-processing --------------------------------------------------


def ref_anchors(input_size: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> np.ndarray:
    out = []
    for stride, k in zip(strides, per_cell, strict=True):
        fm = input_size // stride
        for y in range(fm):
            for x in range(fm):
                out += [((x + 0.5) / fm, (y + 0.5) / fm)] * k
    return np.array(out, np.float32)


DETECTORS: dict[str, dict[str, Any]] = {
    "full": {"size": 192, "anchors": ref_anchors(192, (4,), (1,))},
    "short": {"size": 128, "anchors": ref_anchors(128, (8, 16), (2, 6))},
}


def ref_letterbox_geometry(img: np.ndarray, n: int) -> tuple[float, float, float, float]:
    """Scale and offset of the aspect-preserving, centred fit of the frame into n x n."""
    h, w = img.shape[:2]
    s = n / max(h, w)
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    return rw / w, rh / h, (n - rw) // 2, (n - rh) // 2


def ref_detect(
    img: np.ndarray, x: np.ndarray, model: TFLite, kind: str, min_score: float
) -> list[tuple[np.ndarray, float]]:
    """(box x0 y0 x1 y1 in frame pixels, score) for the letterboxed detector input ``x`` (NHWC):
    TFLite, plain decoding, weighted NMS, mapping back to the frame."""
    cfg = DETECTORS[kind]
    n = cfg["size"]
    sx, sy, ox, oy = ref_letterbox_geometry(img, n)
    reg, cls = model(x[None])
    reg, logit = reg[0], cls[0, :, 0]
    score = 1 / (1 + np.exp(-np.clip(logit.astype(np.float64), -100, 100)))
    a = cfg["anchors"]
    cx = reg[:, 0] / n + a[:, 0]
    cy = reg[:, 1] / n + a[:, 1]
    w, h = reg[:, 2] / n, reg[:, 3] / n
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * n
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - ox) / sx
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - oy) / sy
    remaining = [int(i) for i in np.argsort(-score) if score[i] >= min_score]
    kept: list[tuple[np.ndarray, float]] = []
    while remaining:  # MediaPipe WEIGHTED NMS: score-weighted mean of the overlapping cluster
        top = boxes[remaining[0]]
        cluster = [i for i in remaining if iou(top, boxes[i]) > 0.3]
        weights = score[cluster]
        kept.append(((boxes[cluster] * weights[:, None]).sum(0) / weights.sum(), float(score[cluster[0]])))
        remaining = [i for i in remaining if i not in cluster]
    return kept


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def roi_matrix(roi: Roi, res: int, flip: bool = False) -> np.ndarray:
    """2x3 affine: crop pixel-centre coordinates (OpenCV convention) -> frame OpenCV coordinates."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    k = roi.size / res
    fx = -1.0 if flip else 1.0
    # crop continuous (j + 0.5) -> u = (j + 0.5) / res - 0.5 (mirrored if flip); frame cv = cont - 0.5
    a = np.array([[c * k * fx, -s * k], [s * k * fx, c * k]])
    u0 = fx * (0.5 / res - 0.5)
    v0 = 0.5 / res - 0.5
    t = np.array(
        [
            roi.cx + roi.size * (c * u0 - s * v0) - 0.5,
            roi.cy + roi.size * (s * u0 + c * v0) - 0.5,
        ]
    )
    return np.hstack([a, t[:, None]])


def ref_crop(img: np.ndarray, roi: Roi, res: int, flip: bool = False) -> np.ndarray:
    m = roi_matrix(roi, res, flip)
    out = cv2.warpAffine(
        img.astype(np.float32),
        m,
        (res, res),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out / 255.0


def to_crop_px(points: np.ndarray, roi: Roi, res: int, flip: bool = False) -> np.ndarray:
    """Frame pixels -> crop pixels (continuous) of a ROI; xy only."""
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    dx, dy = points[:, 0] - roi.cx, points[:, 1] - roi.cy
    u = (c * dx + s * dy) / roi.size
    v = (-s * dx + c * dy) / roi.size
    if flip:
        u = -u
    return np.stack([(u + 0.5) * res, (v + 0.5) * res], 1)


def eye_roi(p: np.ndarray, q: np.ndarray) -> Roi:
    return Roi(
        cx=float(p[0] + q[0]) / 2,
        cy=float(p[1] + q[1]) / 2,
        size=float(max(abs(p[0] - q[0]), abs(p[1] - q[1]))) * 2.3,
        rotation=math.atan2(float(q[1] - p[1]), float(q[0] - p[0])),
    )


# -- tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "short"])
def test_detector_raw_outputs_match_tflite(
    kind: str,
    photos: dict[str, np.ndarray],
    tflite: dict[str, TFLite],
    perception: FacePerception,
    short_perception: FacePerception,
) -> None:
    fp = perception if kind == "full" else short_perception
    inputs = torch.cat([fp._letterbox(fp._frame_tensor(img))[0] for img in photos.values()])
    ref_reg, ref_cls = tflite[kind](inputs.permute(0, 2, 3, 1).numpy())
    with torch.inference_mode():
        reg, cls = fp.detector_net(inputs)
    _assert_close(reg, ref_reg, f"{kind} regressors")
    _assert_close(cls, ref_cls, f"{kind} classificators")


@pytest.mark.parametrize("kind", ["full", "short"])
def test_detections_match_reference_pipeline(
    kind: str,
    photos: dict[str, np.ndarray],
    tflite: dict[str, TFLite],
    perception: FacePerception,
    short_perception: FacePerception,
) -> None:
    """Same threshold (0.5) on both sides; every confident face (score >= 0.6) of either side is
    found by the other with IoU > 0.9 (borderline faces near 0.5 may legitimately flip)."""
    fp = perception if kind == "full" else short_perception
    ours = fp._detect([fp._frame_tensor(img) for img in photos.values()], 1.0)
    n_faces = 0
    ious: list[float] = []
    for (path, img), dets in zip(photos.items(), ours, strict=True):
        x = fp._letterbox(fp._frame_tensor(img))[0].permute(0, 2, 3, 1).numpy()[0]
        ref = ref_detect(img, x, tflite[kind], kind, min_score=0.5)
        for box, score in ref:
            if score >= 0.6:
                best = max((iou(box, d.box) for d in dets), default=0.0)
                assert best > 0.9, f"{path}: reference box {box} ({score:.2f}) best IoU {best:.3f}"
                ious.append(best)
                n_faces += 1
        for d in dets:
            if d.score >= 0.6:
                best = max((iou(box, d.box) for box, _ in ref), default=0.0)
                assert best > 0.9, f"{path}: our box {d.box} ({d.score:.2f}) best IoU {best:.3f}"
    print(f"\n{kind}: {n_faces} confident faces, min IoU {min(ious, default=0):.4f}")
    assert n_faces >= len(photos) // 2, "too few confident faces to compare"


def test_mesh_and_iris_match_reference_pipeline(
    photos: dict[str, np.ndarray], tflite: dict[str, TFLite], iris_perception: FacePerception
) -> None:
    perception = iris_perception
    results = perception(list(photos.values()))
    mesh_err: list[float] = []
    iris_err: list[float] = []
    for (path, img), faces in zip(photos.items(), results, strict=True):
        assert faces, f"{path}: no face"
        for face in faces:
            # raw: our own crop into both networks
            fr = perception._frame_tensor(img)
            crop = roi_ops.crop(fr, roi_ops.roi_tensor([face.roi], fr.device), 192) / 255.0
            ref_mesh_raw, ref_presence = tflite["mesh"](crop.permute(0, 2, 3, 1).numpy())
            with torch.inference_mode():
                mesh_raw, presence = perception.mesh_net(crop)
            _assert_close(mesh_raw, ref_mesh_raw, f"{path} mesh raw")
            _assert_close(presence, ref_presence, f"{path} presence raw")

            # pipeline: independent cv2 crop -> TFLite -> compare in 192-px crop units
            ref_in = ref_crop(img, face.roi, 192)
            ref_pts = tflite["mesh"](ref_in[None])[0].reshape(468, 3)[:, :2]
            ours_pts = to_crop_px(face.mesh, face.roi, 192)
            mesh_err.append(float(np.linalg.norm(ours_pts - ref_pts, axis=1).mean()))

            for eye, ((a, b), flip) in enumerate(zip(((33, 133), (362, 263)), (False, True), strict=True)):
                roi = eye_roi(face.mesh[a], face.mesh[b])
                ref_eye = ref_crop(img, roi, 64, flip)
                contour, iris = tflite["iris"](ref_eye[None])
                ref_iris = iris.reshape(5, 3)[:, :2]
                ref_contour = contour.reshape(71, 3)[:, :2]
                if flip:
                    ref_iris = np.stack([64 - ref_iris[:, 0], ref_iris[:, 1]], 1)
                    ref_contour = np.stack([64 - ref_contour[:, 0], ref_contour[:, 1]], 1)
                ours_iris = to_crop_px(face.iris[eye], roi, 64)
                ours_contour = to_crop_px(face.eye_contours[eye], roi, 64)
                iris_err.append(float(np.linalg.norm(ours_iris - ref_iris, axis=1).mean()))
                iris_err.append(float(np.linalg.norm(ours_contour - ref_contour, axis=1).mean()))
    print(f"\nmesh mean px error (192 px crop): max {max(mesh_err):.4f} mean {np.mean(mesh_err):.4f}")
    print(f"iris mean px error (64 px crop): max {max(iris_err):.4f} mean {np.mean(iris_err):.4f}")
    assert max(mesh_err) < 0.5, mesh_err
    assert max(iris_err) < 0.5, iris_err


def test_iris_raw_outputs_match_tflite(
    photos: dict[str, np.ndarray], tflite: dict[str, TFLite], iris_perception: FacePerception
) -> None:
    perception = iris_perception
    assert perception.iris_net is not None
    img = photos["faces/angelina_jolie/1.jpg"]
    face = perception([img])[0][0]
    fr = perception._frame_tensor(img)
    mesh = torch.from_numpy(face.mesh)[None]
    rois = roi_ops.eye_rois_tensor(mesh).reshape(-1, 4)
    crops = roi_ops.crop(fr, rois, 64, torch.tensor([False, True])) / 255.0
    ref_contour, ref_iris = tflite["iris"](crops.permute(0, 2, 3, 1).numpy())
    with torch.inference_mode():
        contour, iris = perception.iris_net(crops)
    _assert_close(contour, ref_contour, "eye contour raw")
    _assert_close(iris, ref_iris, "iris raw")
