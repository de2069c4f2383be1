"""The digital mask's face: template geometry driven by motion and eye measurements only.

Given a head pose, an expression (landmark motion relative to the patient's own neutral face, in the
head frame) and the eye state, build the posed vertices and per-vertex shading attributes of the
template face plus its eye plates and mouth plate. Nothing here reads the patient's neutral shape:
only differences from it (expression) and iris-normalised eye numbers reach the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from models.eyes import EyeState, along_slid_lids, eye_axes
from models.template import (
    EYE_INNER,
    EYE_OUTER,
    EYE_RING,
    LIPS_INNER,
    LOWER_LID,
    UPPER_LID,
    load_canonical_face,
)
from models.texture import texture_frame

# Appearance of the template: generic and identical for everyone (sRGB 0..1).
# (the skin, brows, lashes and lips are painted by models/texture.py)
SCLERA = (0.86, 0.83, 0.79)
IRIS = (0.36, 0.25, 0.16)
LIMBUS = (0.18, 0.12, 0.08)
PUPIL = (0.04, 0.04, 0.04)
MOUTH = (0.25, 0.08, 0.08)
BACKGROUND = (0.47, 0.49, 0.50)

MATERIAL_SKIN, MATERIAL_EYE, MATERIAL_MOUTH = 0, 1, 2
# Template eye openings are drawn larger than the canonical mesh's: more pixels per eye make lid and
# iris positions readable by downstream face tools at video resolutions. Same for every patient.
EYE_SCALE = 1.0
# where along the eye (0 outer corner, 1 inner) the drawn iris and the lids' matching place may go
IRIS_ALONG_RANGE = (0.15, 0.85)
_PLATE_DEPTH = 0.35  # eye and mouth plates sit this far (template units) behind their openings
_UPPER_LIP_CENTRE, _LOWER_LIP_CENTRE = 13, 14  # inner lip points (MediaPipe topology)
# template y (image axes, down) below the lowest a driven lower lid can go: the eyes stay as measured
_LOWER_FACE_TOP = -1.5
_JAW_RAMP = 6.0  # template units below that line over which the width change comes in fully (at the mouth)


@dataclass(frozen=True)
class FaceShape:
    """The template's proportions below the eyes, drawn afresh for every mask (``Appearance.random``).

    A shorter lower face than the canonical mesh's makes generic six-point head-pose readers read the
    mask's head turn as they read a real face's (the canonical chin sits low, and such readers then
    over-read yaw); drawing height and width at random per mask keeps two masks of one person from
    sharing a face shape a recogniser could link them by. Nothing here comes from the patient.
    """

    lower_height: float = 1.0  # scale of the face below the eyes, vertically
    lower_width: float = 1.0  # scale of the jaw and mouth region, horizontally


@dataclass(frozen=True)
class TemplateRig:
    """Everything about the template that does not change from frame to frame."""

    vertices: np.ndarray  # (468, 3) template, image axes
    triangles: np.ndarray  # (F, 3) skin + eye plates + mouth plate (indices into the 480 vertices)
    material: np.ndarray  # (480,) material id per vertex
    albedo: np.ndarray  # (480, 3) flat colour per vertex of the eye and mouth plates (skin: unused)
    lid_skin: np.ndarray  # (468, 2, 2, 7) how much each vertex follows each lid point (eye, lid, point)
    plate_local: np.ndarray  # (8, 2) eye-plate vertices in their eye's frame (u along the eye, v up)
    uv: np.ndarray  # (480, 2) texture coordinates (rest template x, y) in grid_sample's [-1, 1]
    lid_u: np.ndarray  # (2, 2, 7) template lid points along the eye axis (eye, upper/lower, point)
    lid_v: np.ndarray  # (2, 2, 7) template lid heights above the corner line
    eye_width: np.ndarray  # (2,) template corner-to-corner width
    iris_diameter: float


def _plate(corners: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Two triangles over four corner vertices numbered from ``base``."""
    return corners, np.array([[base, base + 1, base + 2], [base, base + 2, base + 3]])


@lru_cache(maxsize=1)
def template_rig() -> TemplateRig:
    face = load_canonical_face()
    v = face.vertices.astype(np.float64).copy()
    for ring in EYE_RING:  # the template's eyes, a little larger than the average face's (see EYE_SCALE)
        idx = list(ring)
        centre = v[idx, :2].mean(axis=0)
        v[idx, :2] = centre + EYE_SCALE * (v[idx, :2] - centre)
    albedo = np.zeros((468, 3))  # the skin is textured

    extra_v: list[np.ndarray] = []
    extra_t: list[np.ndarray] = []
    outer = v[list(EYE_OUTER)]
    inner = v[list(EYE_INNER)]
    u_ax, v_ax = eye_axes(outer, inner)
    width = np.linalg.norm(inner[:, :2] - outer[:, :2], axis=-1)
    lid_u = np.zeros((2, 2, 7))
    lid_v = np.zeros((2, 2, 7))
    for e in range(2):
        for k, lid in enumerate((UPPER_LID[e], LOWER_LID[e])):
            d = v[list(lid), :2] - outer[e, :2]
            lid_u[e, k] = d @ u_ax[e]
            lid_v[e, k] = d @ v_ax[e]
        # The plate is tilted like the eye (outer corner deeper than inner) and only a little larger
        # than the opening, so the receding skin beside the eye always stays in front of it.
        centre = 0.5 * (outer[e, :2] + inner[e, :2])
        du, dv = u_ax[e] * width[e] * 0.58, v_ax[e] * width[e] * 0.5
        quad = np.array([centre - du - dv, centre + du - dv, centre + du + dv, centre - du + dv])
        z_out, z_in = outer[e, 2] + _PLATE_DEPTH, inner[e, 2] + _PLATE_DEPTH
        corners, tri = _plate(np.c_[quad, [z_out, z_in, z_in, z_out]], 468 + 4 * e)
        extra_v.append(corners)
        extra_t.append(tri)
    lips = v[list(LIPS_INNER)]
    lo, hi = lips[:, :2].min(0), lips[:, :2].max(0)
    pad = np.array([0.25, 0.3])  # generous: the skin around the mouth hides what the opening does not show
    quad = np.array(
        [
            [lo[0] - pad[0], lo[1] - pad[1]],
            [hi[0] + pad[0], lo[1] - pad[1]],
            [hi[0] + pad[0], hi[1] + pad[1]],
            [lo[0] - pad[0], hi[1] + pad[1]],
        ]
    )
    corners, tri = _plate(np.c_[quad, np.full(4, lips[:, 2].max() + _PLATE_DEPTH)], 476)
    extra_v.append(corners)
    extra_t.append(tri)

    all_v = np.concatenate([v, *extra_v]).astype(np.float32)
    material = np.zeros(len(all_v), dtype=np.int64)
    material[468:476] = MATERIAL_EYE
    material[476:480] = MATERIAL_MOUTH
    albedo = np.concatenate([albedo, np.tile(np.array(SCLERA), (8, 1)), np.tile(np.array(MOUTH), (4, 1))])
    return TemplateRig(
        vertices=all_v,
        triangles=np.concatenate([face.triangles, *extra_t]).astype(np.int64),
        material=material,
        albedo=albedo.astype(np.float32),
        lid_skin=_lid_skin_weights(v),
        plate_local=_plate_local(all_v),
        uv=texture_frame(v).to_uv(all_v[:, :2].astype(np.float64)).astype(np.float32),
        lid_u=lid_u,
        lid_v=lid_v,
        eye_width=width,
        iris_diameter=face.iris_diameter,
    )


_LID_SKIN_REACH = (0.42, 0.3)  # template units: how far the skin above / below a lid follows it


def _lid_skin_weights(v: np.ndarray) -> np.ndarray:
    """Weights that let the skin around each lid follow the lid margin, fading with distance.

    Without them only the margin vertices move: an opening lid would slide over the next ring of
    vertices and fold its triangles (the painted lashes vanish into the fold). With them the lid skin
    moves as one sheet, most near the margin and not at all at the brow or on the cheek.
    """
    weights = np.zeros((468, 2, 2, 7))
    ring_all = {i for ring in EYE_RING for i in ring}
    for e in range(2):
        centre = 0.5 * (v[EYE_OUTER[e], :2] + v[EYE_INNER[e], :2])
        width = float(np.linalg.norm(v[EYE_INNER[e], :2] - v[EYE_OUTER[e], :2]))
        for k, lid in enumerate((UPPER_LID[e], LOWER_LID[e])):
            pts = v[list(lid), :2]
            for i in range(468):
                if i in ring_all or np.linalg.norm(v[i, :2] - centre) > 1.2 * width:
                    continue
                above = v[i, 1] < np.interp(v[i, 0], *_sorted_xy(pts)) if k == 0 else False
                below = v[i, 1] > np.interp(v[i, 0], *_sorted_xy(pts)) if k == 1 else False
                if not (above or below):
                    continue
                d = np.linalg.norm(pts - v[i, :2], axis=1)
                near = np.exp(-0.5 * (d / 0.25) ** 2)
                fade = float(np.exp(-0.5 * (d.min() / _LID_SKIN_REACH[k]) ** 2))
                weights[i, e, k] = fade * near / max(float(near.sum()), 1e-9)
    return weights


def _plate_local(vertices: np.ndarray) -> np.ndarray:
    """Each eye plate's corners in that eye's local frame: fixed by the rig, computed once."""
    out = np.zeros((8, 2))
    for e in range(2):
        outer = vertices[EYE_OUTER[e], :2].astype(np.float64)
        inner = vertices[EYE_INNER[e], :2].astype(np.float64)
        u_ax, v_ax = eye_axes(outer, inner)
        corners = vertices[468 + 4 * e : 472 + 4 * e, :2] - outer
        out[4 * e : 4 * e + 4] = np.stack([corners @ u_ax, corners @ v_ax], axis=1)
    return out


def _sorted_xy(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pts[:, 0])
    return pts[order, 0], pts[order, 1]


@dataclass(frozen=True)
class EyeDrive:
    """Where the rendered template's lids and iris go, per eye, in template units (eye-local)."""

    lid_v: np.ndarray  # (2, 2, 7) new lid heights (eye, upper/lower, point)
    iris_uv: np.ndarray  # (2, 2) rendered iris centre (u, v) in the template's eye frame


def _along_lid(lid_u: np.ndarray, values: np.ndarray, u: float) -> float:
    """``values`` given at a lid curve's vertices (positions ``lid_u`` along the eye, in any order),
    read at position ``u`` by linear interpolation."""
    order = np.argsort(lid_u)
    return float(np.interp(u, lid_u[order], values[order]))


def drive_eyes(state: EyeState) -> EyeDrive:
    """Map one frame's eye state (arrays of shape (2,)) onto the template's eyes.

    The template keeps its own eye width and lid shape; only the iris-normalised numbers move it: iris
    position along the eye axis (as a fraction of the width), iris height, and lid margin distances
    from the iris centre (MRD1, MRD2) in iris diameters. The lid curves are scaled so that their height
    equals what was measured at the place along the eye where it was measured: the iris's place on the
    lid curves as the networks read them, which slide with their corners (``eyes.along_slid_lids``);
    the iris itself is drawn at its true place.
    """
    rig = template_rig()
    d = rig.iris_diameter
    lid_v = rig.lid_v.copy()
    iris_uv = np.zeros((2, 2))
    for e in range(2):
        w = rig.eye_width[e]
        u_r = float(np.clip(state.iris_u[e], *IRIS_ALONG_RANGE)) * w
        v_r = float(np.clip(state.iris_v[e], -1.0, 1.0)) * d
        up_target = v_r + float(np.clip(state.upper[e], -1.0, 1.5)) * d
        lo_target = v_r - float(np.clip(state.lower[e], -1.0, 1.5)) * d
        u_lids = float(np.clip(along_slid_lids(state.iris_u[e]), *IRIS_ALONG_RANGE)) * w
        up_t = _along_lid(rig.lid_u[e, 0], rig.lid_v[e, 0], u_lids)
        lo_t = _along_lid(rig.lid_u[e, 1], rig.lid_v[e, 1], u_lids)
        a_up = np.clip(up_target / up_t if abs(up_t) > 1e-6 else 1.0, -1.0, 3.0)
        a_lo = np.clip(lo_target / lo_t if abs(lo_t) > 1e-6 else 1.0, -1.0, 3.0)
        upper = rig.lid_v[e, 0] * a_up
        lower = rig.lid_v[e, 1] * a_lo
        lid_v[e, 0] = np.maximum(upper, lower)  # a closed eye: lids meet, never cross
        lid_v[e, 1] = np.minimum(upper, lower)
        iris_uv[e] = (u_r, v_r)
    return EyeDrive(lid_v=lift_shut_line(lid_v), iris_uv=iris_uv)


# Closure (eye_closure) from which a closing eye's lids rise together towards its corners' line: the
# last fifth of a blink, where the lids hide all but a sliver of the iris.
SHUT_LINE_FROM = 0.8


def lift_shut_line(lid_v: np.ndarray) -> np.ndarray:
    """Driven lid heights (eye, upper/lower, point) with each nearly shut eye's lids raised together
    by the lower lid's depth below the corners' line, in full once the lids meet.

    Why: drawn shut where the lower lid lies, the closed lid line sagged in the open lower lid's deep
    curve, where a real shut eye's lids meet along a shallow line between its corners (livep_d9's
    blinks: the line at about two thirds of the open eye's height). The sag read as an opening: dlib put
    its upper eye points on the corners' line and its lower ones on the sagging lash line, an EAR of
    0.64-0.87 of the open eye's on livep_d9's shut frames, more open than the same blink's half-closed
    frames (0.5-0.6), so one blink was counted as two or three (models/README.md, "The shut line").
    Both lids move by the same amount, so the aperture the lids show is the measured one at every
    point; only where a shut eye's line lies changes.
    """
    closure = eye_closure(lid_v)
    out = lid_v.copy()
    for e in range(2):
        t = float(np.clip((closure[e] - SHUT_LINE_FROM) / (1.0 - SHUT_LINE_FROM), 0.0, 1.0))
        out[e] -= lid_v[e, 1] * (t * t * (3.0 - 2.0 * t))
    return out


def reshape_lower_face(v: torch.Tensor, shape: FaceShape) -> torch.Tensor:
    """Template-unit vertices (N, 3) with the face below the eyes scaled by ``shape``; the eyes and
    everything above them unchanged. Height scales linearly from the line below the lower lids (so the
    surface stays continuous); width comes in gradually down to the mouth (no seam across the cheeks)."""
    y = v[:, 1]
    depth = (y - _LOWER_FACE_TOP).clamp(min=0.0)
    out = v.clone()
    out[:, 1] = torch.where(y > _LOWER_FACE_TOP, _LOWER_FACE_TOP + shape.lower_height * depth, y)
    out[:, 0] = v[:, 0] * (1.0 + (shape.lower_width - 1.0) * (depth / _JAW_RAMP).clamp(max=1.0))
    return out


def posed_vertices(
    expression: torch.Tensor,
    eyes: EyeDrive,
    rot: torch.Tensor,
    scale: torch.Tensor,
    trans: torch.Tensor,
    shape: FaceShape = FaceShape(),
) -> torch.Tensor:
    """Template vertices (480, 3) in frame pixels: template + expression, eyes driven, reshaped below
    the eyes (``shape``), then posed.

    expression: (468, 3) landmark motion in template units (zero for a photo).
    """
    rig = template_rig()
    dev, dt = rot.device, rot.dtype
    v = torch.as_tensor(rig.vertices, device=dev, dtype=dt).clone()
    v[:468] += expression
    # the mouth plate follows the lips: its top edge the upper lip, its bottom edge the lower lip, so an
    # open mouth shows the plate, never the background through the face
    v[476:478] += expression[_UPPER_LIP_CENTRE]
    v[478:480] += expression[_LOWER_LIP_CENTRE]
    tv = torch.as_tensor(rig.vertices, device=dev, dtype=dt)
    for e in range(2):
        outer = tv[EYE_OUTER[e], :2]
        inner = tv[EYE_INNER[e], :2]
        u = (inner - outer) / (inner - outer).norm()
        up = torch.tensor([0.0, -1.0], device=dev, dtype=dt)
        vv = up - (up @ u) * u
        vv = vv / vv.norm()
        for k, lid in enumerate((UPPER_LID[e], LOWER_LID[e])):
            idx = list(lid)
            lu = torch.as_tensor(rig.lid_u[e, k], device=dev, dtype=dt)
            lv = torch.as_tensor(eyes.lid_v[e, k], device=dev, dtype=dt)
            v[idx, :2] = outer + lu.unsqueeze(1) * u + lv.unsqueeze(1) * vv
            v[idx, 2] = tv[idx, 2]
        for corner in (EYE_OUTER[e], EYE_INNER[e]):
            v[corner] = tv[corner]
        # the skin around each lid follows its margin (see _lid_skin_weights)
        for k, lid in enumerate((UPPER_LID[e], LOWER_LID[e])):
            moved = v[list(lid), :2] - tv[list(lid), :2]  # (7, 2)
            w = torch.as_tensor(rig.lid_skin[:, e, k], device=dev, dtype=dt)  # (468, 7)
            v[:468, :2] += w @ moved
    if shape != FaceShape():
        # the eye plates (468:476) keep their shape: the eye shader maps the eyeball across them
        v[:468] = reshape_lower_face(v[:468], shape)
        v[476:] = reshape_lower_face(v[476:], shape)
    return scale * (v @ rot.T) + trans


@dataclass(frozen=True)
class EyePlates:
    """What the eye shader needs for one posed face: where each eye-plate vertex sits in its eye's
    local frame, and where the driven iris and lids are in that frame (template units)."""

    local: np.ndarray  # (8, 2) plate vertices (u along outer->inner corner, v up), per eye 4 vertices
    iris_uv: np.ndarray  # (2, 2) rendered iris centre per eye
    lid_u: np.ndarray  # (2, 2, 7) lid points along the eye axis (eye, upper/lower, point)
    lid_v: np.ndarray  # (2, 2, 7) driven lid heights
    iris_diameter: float
    eye_width: np.ndarray  # (2,)
    closure: np.ndarray  # (2,) per eye, 0 = open as the template .. 1 = lids met (see eye_closure)


def eye_closure(lid_v: np.ndarray) -> np.ndarray:
    """Per eye, how far the driven lids (``EyeDrive.lid_v``) have closed at the middle of the eye:
    1 - aperture / the template's own."""
    rig = template_rig()
    out = np.zeros(2)
    for e in range(2):
        mid = 0.5 * float(rig.eye_width[e])
        now = _along_lid(rig.lid_u[e, 0], lid_v[e, 0] - lid_v[e, 1], mid)
        was = _along_lid(rig.lid_u[e, 0], rig.lid_v[e, 0] - rig.lid_v[e, 1], mid)
        out[e] = float(np.clip(1.0 - now / max(was, 1e-9), 0.0, 1.0))
    return out


def eye_plate_coords(eyes: EyeDrive) -> EyePlates:
    """The eye-plate geometry and the driven eye state, for shading the eyeball per pixel.

    Interpolated across the plate, the local coordinates tell each pixel where it is relative to the
    iris and to the lid margins, so the iris is drawn foreshortened with the head pose for free and
    the upper lid can shade the eyeball below it.
    """
    rig = template_rig()
    return EyePlates(
        local=rig.plate_local,
        iris_uv=eyes.iris_uv,
        lid_u=rig.lid_u,
        lid_v=eyes.lid_v,
        iris_diameter=rig.iris_diameter,
        eye_width=rig.eye_width,
        closure=eye_closure(eyes.lid_v),
    )
