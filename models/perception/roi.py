"""Regions of interest and the crops the landmark networks see, as in MediaPipe's face graphs.

Geometry (all in frame pixels, continuous coordinates: pixel (0, 0) covers [0, 1) x [0, 1)):
a ``Roi`` is a square of side ``size`` centred at (cx, cy) whose x-axis points along
(cos rotation, sin rotation) in image coordinates (y down). This is MediaPipe's NormalizedRect
convention expressed in pixels: ``rotation = atan2(dy, dx)`` of the reference vector (eye line),
so that the crop shows that vector horizontal. A crop pixel at normalised crop position (u, v)
in [-0.5, 0.5]^2 comes from frame position

    (cx, cy) + size * (cos r * u - sin r * v,  sin r * u + cos r * v)

and landmarks are mapped back with the same transform (LandmarkProjectionCalculator); z is scaled
like x (size / crop resolution).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .types import Detection, Roi

# MediaPipe: face_detection_front_detection_to_roi / face_landmark_landmarks_to_roi
FACE_ROI_SCALE = 1.5
MESH_ROTATION_POINTS = (33, 263)  # subject's right eye outer corner -> left eye outer corner
# MediaPipe iris_landmark_landmarks_to_roi: two eye corners, scale 2.3. Eye 0 (subject's right,
# image left) = corners 33/133; eye 1 (subject's left) = 362/263, horizontally flipped because the
# iris network is trained on one eye only.
EYE_CORNERS = ((33, 133), (362, 263))
EYE_FLIPPED = (False, True)
EYE_ROI_SCALE = 2.3


def _normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def roi_from_box(box: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float) -> Roi:
    """DetectionsToRects (axis-aligned box centre, rotation from ``start`` -> ``end``) followed by
    RectTransformation(square_long, scale)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    rotation = _normalize_radians(math.atan2(float(end[1] - start[1]), float(end[0] - start[0])))
    size = max(x1 - x0, y1 - y0) * scale
    return Roi(cx=(x0 + x1) / 2, cy=(y0 + y1) / 2, size=size, rotation=rotation)


def roi_from_detection(det: Detection) -> Roi:
    """Face ROI seeded by a detection: box scaled 1.5, rotated so the eye line is horizontal."""
    return roi_from_box(det.box, det.keypoints[0], det.keypoints[1], FACE_ROI_SCALE)


def bbox(points: np.ndarray) -> np.ndarray:
    return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])


def roi_from_mesh(mesh: np.ndarray) -> Roi:
    """Face ROI for the next video frame from this frame's mesh (landmark bbox scaled 1.5, rotation
    from landmarks 33 -> 263), so tracking needs no detector run."""
    a, b = MESH_ROTATION_POINTS
    return roi_from_box(bbox(mesh[:, :2]), mesh[a, :2], mesh[b, :2], FACE_ROI_SCALE)


def eye_rois_tensor(mesh: torch.Tensor) -> torch.Tensor:
    """Eye ROIs for a batch of meshes: (F, 468, 3) -> (F, 2, 4) [cx, cy, size, rotation]."""
    rois = []
    for a, b in EYE_CORNERS:
        p, q = mesh[:, a, :2], mesh[:, b, :2]
        centre = (p + q) / 2
        extent = (p - q).abs().amax(dim=-1)
        d = q - p
        rotation = torch.atan2(d[:, 1], d[:, 0])
        rois.append(torch.stack([centre[:, 0], centre[:, 1], extent * EYE_ROI_SCALE, rotation], dim=-1))
    return torch.stack(rois, dim=1)


def roi_tensor(rois: list[Roi], device: torch.device) -> torch.Tensor:
    return torch.tensor([[r.cx, r.cy, r.size, r.rotation] for r in rois], dtype=torch.float32, device=device)


# An antialiased crop samples each crop pixel this many times across at most (so 16 samples).
MAX_SUBSAMPLES = 4


def subsamples(rois: torch.Tensor, out: int) -> int:
    """How many samples across each crop pixel an antialiased crop takes: about the frame pixels one
    crop pixel spans (the largest face of the batch decides), at least 1, at most ``MAX_SUBSAMPLES``."""
    if rois.shape[0] == 0:
        return 1
    span = float((rois[:, 2] / out).max())
    return int(min(MAX_SUBSAMPLES, max(1, round(span))))


def crop(
    frame: torch.Tensor,
    rois: torch.Tensor,
    out: int,
    flip: torch.Tensor | None = None,
    antialias: bool = False,
) -> torch.Tensor:
    """Batched rotated square crops of one frame (1, C, H, W) float -> (n, C, out, out).

    Bilinear, border pixels replicated outside the frame (ImageToTensor BORDER_REPLICATE).
    ``flip`` (n,) bool mirrors a crop horizontally. ``antialias``: each crop pixel is the mean of a
    ``subsamples`` x ``subsamples`` grid over the frame pixels it spans, so a crop that shrinks the
    face averages those pixels instead of picking four of them. Why: a face filmed in a dim room with
    the camera's gain turned up is grainy, and a plain bilinear crop hands that grain to the landmark
    network nearly undiminished; averaging what each crop pixel covers divides it by the shrink factor
    (models/README.md, "Low light: the grain averaged in the crop")."""
    if antialias:
        k = subsamples(rois, out)
        if k > 1:
            return F.avg_pool2d(crop(frame, rois, out * k, flip), k)
    n = rois.shape[0]
    _, _, h, w = frame.shape
    t = (torch.arange(out, device=frame.device, dtype=torch.float32) + 0.5) / out - 0.5
    v, u = torch.meshgrid(t, t, indexing="ij")  # (out, out)
    u = u.expand(n, out, out)
    if flip is not None:
        u = torch.where(flip[:, None, None], -u, u)
    cx, cy, size, rot = (rois[:, i, None, None] for i in range(4))
    cos, sin = torch.cos(rot), torch.sin(rot)
    x = cx + size * (cos * u - sin * v)
    y = cy + size * (sin * u + cos * v)
    grid = torch.stack([2 * x / w - 1, 2 * y / h - 1], dim=-1)
    return F.grid_sample(
        frame.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def project(
    points: torch.Tensor, rois: torch.Tensor, res: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop-pixel landmarks (n, P, 3) of a ``res`` x ``res`` crop -> frame pixels (n, P, 3)."""
    u = points[..., 0] / res - 0.5
    if flip is not None:
        u = torch.where(flip[:, None], -u, u)
    v = points[..., 1] / res - 0.5
    cx, cy, size, rot = (rois[:, i, None] for i in range(4))
    cos, sin = torch.cos(rot), torch.sin(rot)
    x = cx + size * (cos * u - sin * v)
    y = cy + size * (sin * u + cos * v)
    z = points[..., 2] / res * size
    return torch.stack([x, y, z], dim=-1)
