"""Pass 2a: from a track's landmarks to what may be rendered — pose, expression motion, eye state.

Per track: the rigid head pose per frame (template fitted to the landmarks), the landmarks in the
head frame, the patient's neutral face (per-point median over the track: robust to blinks and
expressions), expression = deviation from that neutral, and the eye state. The neutral face itself is
used only to subtract: it is never rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.eyes import EyeState, calibrate_closure, iris_diameter, measure_eyes
from models.filters import binomial3, median3
from models.geometry import euler_to_rotation, fit_similarity, rotation_to_euler
from models.template import EYE_RING, RIGID, load_canonical_face
from models.tracking import Track

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
    expression: np.ndarray  # (T, 468, 3) template units
    eyes: EyeState  # fields (T, 2), median-filtered
    face_size: float  # median scale x template width in pixels: which face is the patient


def reconstruct(track: Track, device: torch.device | str = "cpu") -> TrackReconstruction:
    frames = np.array(sorted(track.observations), dtype=np.int64)
    obs = [track.observations[int(i)] for i in frames]
    pts = torch.tensor(np.stack([o.points for o in obs]), dtype=torch.float64, device=device)
    iris = torch.tensor(np.stack([o.iris for o in obs]), dtype=torch.float64, device=device)
    template = torch.tensor(load_canonical_face().vertices, dtype=torch.float64, device=device)
    rigid = list(RIGID)
    rot, scale, trans = fit_similarity(template[rigid], pts[:, rigid])

    # landmarks in the head frame, in template units: X = R^T (P - t) / s
    def to_head(p: torch.Tensor) -> torch.Tensor:
        return torch.einsum("tji,tnj->tni", rot, p - trans[:, None, :]) / scale[:, None, None]

    head = to_head(pts).cpu().numpy()
    head_iris = to_head(iris.reshape(len(frames), -1, 3)).reshape(len(frames), 2, 5, 3).cpu().numpy()
    neutral = np.median(head, axis=0)
    expression = head - neutral[None]
    norm = np.linalg.norm(expression, axis=-1, keepdims=True)
    expression = expression * np.minimum(1.0, _MAX_EXPRESSION / np.maximum(norm, 1e-9))
    for ring in EYE_RING:  # eyes are driven by measurements only, never by raw eye-shape motion
        expression[:, list(ring)] = 0.0
    ruler = np.median(iris_diameter(head_iris), axis=0)
    eyes = calibrate_closure(measure_eyes(head, head_iris, diameter=ruler))
    eyes = EyeState(
        width=eyes.width,
        upper=median3(eyes.upper),
        lower=median3(eyes.lower),
        iris_u=median3(eyes.iris_u),
        iris_v=median3(eyes.iris_v),
        iris_diameter=eyes.iris_diameter,
    )
    angles = rotation_to_euler(rot).cpu().numpy()
    smooth_rot = euler_to_rotation(torch.tensor(binomial3(angles))).cpu().numpy()
    width = float(np.linalg.norm(template[234, :2].cpu().numpy() - template[454, :2].cpu().numpy()))
    return TrackReconstruction(
        track_id=track.id,
        frames=frames,
        carried=np.array([o.carried for o in obs]),
        rotation=smooth_rot,
        scale=binomial3(scale.cpu().numpy()),
        translation=binomial3(trans.cpu().numpy()),
        angles=angles,
        expression=expression.astype(np.float32),
        eyes=eyes,
        face_size=float(np.median(scale.cpu().numpy())) * width,
    )
