"""Pass 2a: from a track's landmarks to what may be rendered — pose, expression motion, eye state.

Per track: the rigid head pose per frame (template fitted to the landmarks), the landmarks in the
head frame, the patient's neutral face (per-point median over the track: robust to blinks and
expressions), expression = deviation from that neutral, and the eye state. The neutral face itself is
used only to subtract: it is never rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from models.eyes import (
    EyeState,
    calibrate_closure,
    iris_along_eye_seen,
    iris_diameter,
    measure_eyes,
    undo_corner_slide,
)
from models.filters import binomial3, median3
from models.geometry import euler_to_rotation, fit_similarity, rotation_to_euler
from models.template import EYE_RING, RIGID, load_canonical_face
from models.tracking import LANDMARK_BLOCK, Track, TrackLandmarks

_MAX_EXPRESSION = 1.2  # template units (about cm): larger motion is a landmark error, not a face


@dataclass
class TrackReconstruction:
    track_id: int
    frames: np.ndarray  # (T,) frame indices, increasing
    carried: np.ndarray  # (T,) bool
    rotation: np.ndarray  # (T, 3, 3) smoothed, for rendering
    scale: np.ndarray  # (T,)
    translation: np.ndarray  # (T, 3)
    angles: np.ndarray  # (T, 3) yaw, pitch, roll in degrees (unsmoothed measurement)
    eyes: EyeState  # fields (T, 2), median-filtered
    face_size: float  # median scale x template width in pixels: which face is the patient
    landmarks: TrackLandmarks  # the track's landmarks, read again frame by frame for the expression
    fit: tuple[np.ndarray, np.ndarray, np.ndarray]  # (T, 3, 3), (T,), (T, 3): unsmoothed pose fit
    neutral: np.ndarray  # (468, 3) the patient's neutral in the head frame: only ever subtracted

    def expression(self, pos: int) -> np.ndarray:
        """(468, 3) float32 landmark motion of the ``pos``-th frame, in template units.

        Computed when the frame is rendered rather than stored for every frame: a stored expression
        would double what a long video keeps in memory (models/README.md, "Memory")."""
        rot, scale, trans = (torch.as_tensor(a[pos : pos + 1]) for a in self.fit)
        pts = torch.as_tensor(self.landmarks.points(pos, pos + 1), dtype=torch.float64)
        return _motion(_to_head(pts, rot, trans, scale).numpy(), self.neutral)[0].astype(np.float32)


# Memory: the per-frame work runs in chunks of whole landmark blocks, and the neutral face is the median
# over at most _NEUTRAL_SAMPLES evenly spaced frames, so the transient float64 arrays are bounded and
# what a track keeps per frame is its landmarks (models/tracking.py), its pose and its eye numbers.
_CHUNK = LANDMARK_BLOCK
_NEUTRAL_SAMPLES = 1500


def _to_head(p: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Landmarks in the head frame, in template units: X = R^T (P - t) / s."""
    return torch.einsum("tji,tnj->tni", rot, p - trans[:, None, :]) / scale[:, None, None]


def _motion(head: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """Expression: head-frame landmarks minus the neutral, larger motion clipped as landmark error, and
    nothing on the eye rings (the eyes are driven by measurements only, never by raw eye-shape motion)."""
    motion = head - neutral[None]
    norm = np.linalg.norm(motion, axis=-1, keepdims=True)
    motion = motion * np.minimum(1.0, _MAX_EXPRESSION / np.maximum(norm, 1e-9))
    for ring in EYE_RING:
        motion[:, list(ring)] = 0.0
    return motion


def reconstruct(track: Track, device: torch.device | str = "cpu") -> TrackReconstruction:
    marks = track.landmarks
    frames = marks.frames
    n = len(frames)
    template = torch.tensor(load_canonical_face().vertices, dtype=torch.float64, device=device)
    rigid = list(RIGID)

    def chunk(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        pts = torch.tensor(marks.points(lo, hi), dtype=torch.float64, device=device)
        iris = torch.tensor(marks.iris(lo, hi), dtype=torch.float64, device=device)
        return pts, iris.reshape(hi - lo, -1, 3)

    # pass A: pose per frame and the iris ruler; head points only for the neutral's sample of frames
    rot = np.empty((n, 3, 3))
    scale = np.empty(n)
    trans = np.empty((n, 3))
    diameters = np.empty((n, 2))
    sample = set(np.unique(np.linspace(0, n - 1, min(n, _NEUTRAL_SAMPLES)).round().astype(int)).tolist())
    sampled: list[np.ndarray] = []
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        pts, iris = chunk(lo, hi)
        r, sc, t = fit_similarity(template[rigid], pts[:, rigid])
        rot[lo:hi], scale[lo:hi], trans[lo:hi] = r.cpu().numpy(), sc.cpu().numpy(), t.cpu().numpy()
        head_iris = _to_head(iris, r, t, sc).reshape(hi - lo, 2, 5, 3).cpu().numpy()
        diameters[lo:hi] = iris_diameter(head_iris)
        keep = [k - lo for k in range(lo, hi) if k in sample]
        if keep:  # from the stored pose, as TrackReconstruction.expression does: a still face moves by 0
            r64, t64, s64 = (torch.as_tensor(a[lo:hi][keep], device=device) for a in (rot, trans, scale))
            sampled.append(_to_head(pts[keep], r64, t64, s64).cpu().numpy())
    neutral = np.median(np.concatenate(sampled), axis=0)
    ruler = np.median(diameters, axis=0)

    # pass B: the eye state, chunk by chunk
    eye_parts: list[EyeState] = []
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        pts, iris = chunk(lo, hi)
        r = torch.as_tensor(rot[lo:hi], device=device)
        t = torch.as_tensor(trans[lo:hi], device=device)
        sc = torch.as_tensor(scale[lo:hi], device=device)
        head = _to_head(pts, r, t, sc).cpu().numpy()
        head_iris = _to_head(iris, r, t, sc).reshape(hi - lo, 2, 5, 3).cpu().numpy()
        state = measure_eyes(head, head_iris, diameter=ruler)
        seen = iris_along_eye_seen(marks.points(lo, hi), marks.iris(lo, hi))  # image landmarks, on the host
        # along the eye as the camera saw it (see there), without the corners' slide (undo_corner_slide)
        eye_parts.append(replace(state, iris_u=undo_corner_slide(seen)))
    eyes = calibrate_closure(_concat_eyes(eye_parts))
    eyes = EyeState(
        width=eyes.width,
        upper=median3(eyes.upper),
        lower=median3(eyes.lower),
        iris_u=median3(eyes.iris_u),
        iris_v=median3(eyes.iris_v),
        iris_diameter=eyes.iris_diameter,
    )
    angles = rotation_to_euler(torch.as_tensor(rot)).cpu().numpy()
    smooth_rot = euler_to_rotation(torch.tensor(binomial3(angles))).cpu().numpy()
    width = float(np.linalg.norm(template[234, :2].cpu().numpy() - template[454, :2].cpu().numpy()))
    return TrackReconstruction(
        track_id=track.id,
        frames=frames,
        carried=marks.carried,
        rotation=smooth_rot,
        scale=binomial3(scale),
        translation=binomial3(trans),
        angles=angles,
        eyes=eyes,
        face_size=float(np.median(scale)) * width,
        landmarks=marks,
        fit=(rot, scale, trans),
        neutral=neutral,
    )


def _concat_eyes(parts: list[EyeState]) -> EyeState:
    def cat(name: str) -> np.ndarray:
        return np.concatenate([np.broadcast_to(getattr(p, name), p.upper.shape) for p in parts])

    return EyeState(
        width=cat("width"),
        upper=cat("upper"),
        lower=cat("lower"),
        iris_u=cat("iris_u"),
        iris_v=cat("iris_v"),
        iris_diameter=cat("iris_diameter"),
    )
