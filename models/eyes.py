"""Eye state from landmarks: the few clinical measurements that the mask is allowed to carry.

Everything is measured in the head's own frame (landmarks with the head pose removed) and expressed in
units of the patient's iris diameter, so that distance to the camera, head turn and the patient's own
eye size drop out; except the iris's place along the eye, which is read as the camera sees it
(iris_along_eye_seen says why). The iris diameter is also the ruler for millimetres (11.7 mm, a
population mean).
Vectorised over any leading dimensions (frames, eyes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.template import EYE_INNER, EYE_OUTER, IRIS_DIAMETER_MM, LOWER_LID, UPPER_LID

EYEBALL_RADIUS_MM = 12.0  # for converting iris displacement into degrees of eye rotation


@dataclass(frozen=True)
class EyeState:
    """Per eye, in units of that eye's iris diameter; arrays of shape (..., 2) for (right, left) eye."""

    width: np.ndarray  # corner-to-corner (palpebral fissure width)
    upper: np.ndarray  # upper lid margin height above the iris centre (MRD1)
    lower: np.ndarray  # lower lid margin depth below the iris centre (MRD2)
    iris_u: np.ndarray  # iris centre along the eye axis, 0 = outer corner, 1 = inner corner (a track's is
    # measured in the image, as the camera sees it: iris_along_eye_seen, the corners' slide taken out)
    iris_v: np.ndarray  # iris centre above the corner line
    iris_diameter: np.ndarray  # in the head frame's units (template units after pose removal)

    @property
    def aperture(self) -> np.ndarray:
        return self.upper + self.lower


def eye_axes(outer: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (u along outer->inner corner, v up) in the image-plane of the head frame."""
    u = inner[..., :2] - outer[..., :2]
    u = u / np.linalg.norm(u, axis=-1, keepdims=True).clip(1e-9)
    up = np.array([0.0, -1.0])
    v = up - (u @ up)[..., None] * u
    v = v / np.linalg.norm(v, axis=-1, keepdims=True).clip(1e-9)
    return u, v


def _profile_at(u_pts: np.ndarray, v_pts: np.ndarray, u_query: np.ndarray) -> np.ndarray:
    """Height of a lid polyline (points sorted by u along the last axis) at u_query, vectorised."""
    flat_u = u_pts.reshape(-1, u_pts.shape[-1])
    flat_v = v_pts.reshape(-1, v_pts.shape[-1])
    flat_q = u_query.reshape(-1)
    out = np.empty(flat_q.shape[0])
    for k in range(flat_q.shape[0]):  # small: one per eye per frame, not per pixel
        order = np.argsort(flat_u[k])
        out[k] = np.interp(flat_q[k], flat_u[k][order], flat_v[k][order])
    return out.reshape(u_query.shape)


def measure_eyes(head_points: np.ndarray, iris: np.ndarray, diameter: np.ndarray | None = None) -> EyeState:
    """Eye state from mesh points and iris points already in the head frame.

    head_points: (..., 468, 3) face mesh with the pose removed; iris: (..., 2, 5, 3) iris centre and
    boundary points, same frame. Lid points come from the mesh (whose eye points the iris network
    refines upstream). ``diameter`` (per eye, broadcastable) overrides the per-frame iris size: over a
    video the median size is a steadier ruler than each frame's estimate, which suffers in blinks.
    """
    outer = head_points[..., list(EYE_OUTER), :]  # (..., 2, 3)
    inner = head_points[..., list(EYE_INNER), :]
    upper = np.stack([head_points[..., list(ix), :] for ix in UPPER_LID], axis=-3)  # (..., 2, 7, 3)
    lower = np.stack([head_points[..., list(ix), :] for ix in LOWER_LID], axis=-3)
    u_ax, v_ax = eye_axes(outer, inner)
    width = np.linalg.norm(inner[..., :2] - outer[..., :2], axis=-1)

    def local(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = p[..., :2] - outer[..., None, :2]
        return (d * u_ax[..., None, :]).sum(-1), (d * v_ax[..., None, :]).sum(-1)

    centre = iris[..., 0:1, :]
    cu, cv = local(centre)
    cu, cv = cu[..., 0], cv[..., 0]
    if diameter is None:
        diameter = iris_diameter(iris)
    diameter = np.broadcast_to(np.asarray(diameter, dtype=np.float64), cu.shape).clip(1e-6)
    uu, uv = local(upper)
    lu, lv = local(lower)
    up_h = _profile_at(uu, uv, cu)
    lo_h = _profile_at(lu, lv, cu)
    return EyeState(
        width=width / diameter,
        upper=(up_h - cv) / diameter,
        lower=(cv - lo_h) / diameter,
        iris_u=cu / width.clip(1e-6),
        iris_v=cv / diameter,
        iris_diameter=diameter,
    )


def iris_along_eye_seen(points: np.ndarray, iris: np.ndarray) -> np.ndarray:
    """Iris centre as a fraction of the way from the outer to the inner eye corner, as the camera sees
    it: (..., 468, >=2) image landmarks and (..., 2, 5, >=2) iris points -> (..., 2).

    Why the image and not the head frame: the iris sits in front of the line of the eye corners, so a
    head turn moves it against the corners in the picture (parallax). The head-frame fraction takes
    that out only as far as the iris's depth is known, and it is not (the iris is put at its eye
    ring's mean depth): on the shared videos whose heads turn, an independent reader's pupil position
    followed a head-turn term that ours lacked, and on the mask, drawn from ours, it was missing.
    Measured in the image, the fraction is the one a viewer reads; a flat eye plate drawn in the
    patient's pose shows the same fraction, since projection keeps ratios along a line.
    """
    outer = points[..., list(EYE_OUTER), :2].astype(np.float64)
    inner = points[..., list(EYE_INNER), :2].astype(np.float64)
    axis = inner - outer
    along = ((iris[..., 0, :2].astype(np.float64) - outer) * axis).sum(-1)
    return np.asarray(along / (axis * axis).sum(-1).clip(1e-9))


# The eye corners that the gaze is read between slide with the iris: the networks see the eye whole, and
# a turned eye pulls their corners after it. On the squint phantom, whose corners do not move (an eyeball
# turned under still lids, tools/phantoms.rotate_eyeball), the midpoint of our corners (the contour's and
# the mesh's, averaged: tracking.refine) moved 0.13-0.29 of the iris's shift over four shared clips, mean
# 0.23; the independent reader's corners (dlib's) moved 0.0-0.38 (mean 0.19), and on real gaze shifts ours
# follow the gaze 0.10 more than dlib's. A gaze read between sliding corners is short by that fraction
# (the squint read 8.5-14.6 degrees of 15 on seven clips, a nystagmus 0.69-0.86 mm of 1.05), so it is
# scaled back (models/README.md, "Measured (2026-12-07, eighteenth session)").
CORNER_SLIDE = 0.23


def undo_corner_slide(along: np.ndarray) -> np.ndarray:
    """The iris's place along the eye (0 outer corner, 1 inner) with the corners' slide taken out: its
    distance from the eye's middle divided by (1 - CORNER_SLIDE). The middle is where the corners
    would not move; a place past a corner is clipped by whoever draws it."""
    return np.asarray(0.5 + (np.asarray(along) - 0.5) / (1.0 - CORNER_SLIDE))


def along_slid_lids(along: np.ndarray) -> np.ndarray:
    """The inverse of undo_corner_slide: where the iris sat along the lid curves as the networks read
    them. The lids slide with their corners, so the lid heights at the iris (MRD1, MRD2) were read at this
    place on the slid curves, and a drawn lid must be matched to them there, not at the iris's true place
    (matched there, the template's lids, which taper towards the corners, opened wider in every sideways
    glance: dlib's EAR r on the mask of `livep_d0` fell from 0.81 to 0.68)."""
    return np.asarray(0.5 + (np.asarray(along) - 0.5) * (1.0 - CORNER_SLIDE))


# The iris network's lid contour never quite meets on a fully closed eye: on the shared videos' complete
# blinks the margins stay 0.05-0.15 iris diameters apart at the iris (0.6-1.8 mm; livep_d18 frame 95:
# 0.8 / 2.0 mm). Apertures are mapped linearly so that this residual reads as 0 and a typical open eye
# (0.75 iris diameters, 8.8 mm) reads unchanged; below the residual the eye is closed (0).
CLOSED_RESIDUAL = 0.1
_OPEN_REFERENCE = 0.75


def calibrate_closure(state: EyeState) -> EyeState:
    """Aperture calibrated so that full closure measures 0; the lower lid keeps its measured place
    and the upper lid margin (MRD1) absorbs the correction, as the upper lid is what closes."""
    raw = state.upper + state.lower
    gain = _OPEN_REFERENCE / (_OPEN_REFERENCE - CLOSED_RESIDUAL)
    aperture = np.maximum(raw - CLOSED_RESIDUAL, 0.0) * gain
    return EyeState(
        width=state.width,
        upper=aperture - state.lower,
        lower=state.lower,
        iris_u=state.iris_u,
        iris_v=state.iris_v,
        iris_diameter=state.iris_diameter,
    )


def iris_diameter(iris: np.ndarray) -> np.ndarray:
    """Iris diameter from its 4 boundary points (mean of the two opposite-point distances): (..., 2)."""
    b = iris[..., 1:5, :2]
    d1 = np.linalg.norm(b[..., 0, :] - b[..., 2, :], axis=-1)
    d2 = np.linalg.norm(b[..., 1, :] - b[..., 3, :], axis=-1)
    return np.asarray(0.5 * (d1 + d2))


def to_mm(x_iris_units: np.ndarray) -> np.ndarray:
    return x_iris_units * IRIS_DIAMETER_MM


def rotation_deg(offset_mm: np.ndarray) -> np.ndarray:
    """Eye rotation that displaces the iris centre by ``offset_mm`` on a 12 mm-radius eyeball."""
    return np.degrees(np.arcsin(np.clip(offset_mm / EYEBALL_RADIUS_MM, -1.0, 1.0)))
