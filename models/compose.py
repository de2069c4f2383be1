"""Shade rasterised template faces into an output frame: a fully synthetic picture.

The output starts from a plain background; only template faces are drawn on it. No pixel of the input
frame is read here, which is what makes the mask fail-safe by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.avatar import (
    BACKGROUND,
    IRIS,
    LIMBUS,
    MATERIAL_EYE,
    MATERIAL_MOUTH,
    PUPIL,
    SCLERA,
    template_rig,
)
from models.render import interpolate, rasterize, vertex_normals

_DIFFUSE = 0.62


@dataclass(frozen=True)
class Appearance:
    """Rendering nuisance parameters: nothing here comes from the patient.

    Drawn afresh for every masked photo or video (one draw per video, so nothing flickers), so that two
    masks of one person share no appearance cue that a recogniser could link them by (Meeus et al.'s
    Mask2Mask attack): what repeats between a person's masks is then only pose, motion and the eyes.
    """

    skin_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # multiplies the template albedo
    to_light: tuple[float, float, float] = (-0.25, -0.45, -1.0)  # towards the light (image axes)
    ambient: float = 0.42
    background: tuple[float, float, float] = BACKGROUND

    @classmethod
    def random(cls, rng: np.random.Generator) -> Appearance:
        tone = float(rng.uniform(0.0, 1.0))  # lighter .. darker skin, warm .. neutral
        gain = (1.05 - 0.35 * tone, 1.05 - 0.38 * tone + float(rng.uniform(-0.04, 0.04)), 1.05 - 0.40 * tone)
        az, el = np.radians(rng.uniform(-35, 35)), np.radians(rng.uniform(-10, 35))
        light = (float(np.sin(az) * np.cos(el)), float(-np.sin(el)), float(-np.cos(az) * np.cos(el)))
        grey = float(rng.uniform(0.30, 0.62))
        tint = rng.uniform(-0.03, 0.03, size=3)
        return cls(
            skin_gain=gain,
            to_light=light,
            ambient=float(rng.uniform(0.34, 0.5)),
            background=(grey + float(tint[0]), grey + float(tint[1]), grey + float(tint[2])),
        )


_PUPIL_R, _IRIS_R, _LIMBUS_W = 0.2, 0.5, 0.06  # in iris diameters


@dataclass(frozen=True)
class PosedFace:
    vertices: torch.Tensor  # (480, 3) frame pixels + depth
    eye_coords: np.ndarray  # (8, 2) eye-plate vertices relative to the iris centre, in iris diameters


# Small faces are rendered at (at least) this many pixels across and area-downsampled into the frame:
# edges are anti-aliased and every mask carries the same detail whatever the source resolution, so
# resolution cannot serve as a cue that links two masks of one person.
RENDER_FACE_PX = 256
_MAX_SUPERSAMPLE = 4.0


def render_faces(
    faces: list[PosedFace], height: int, width: int, device: torch.device, look: Appearance | None = None
) -> np.ndarray:
    """Render template faces over a plain background: (height, width, 3) uint8 RGB."""
    look = look or Appearance()
    canvas = torch.tensor(look.background, device=device).expand(height, width, 3).clone()
    # no depth order between separately fitted faces: the larger (nearer) face is drawn last
    for face in sorted(faces, key=lambda f: float(np.ptp(f.vertices[:, 0].cpu().numpy()))):
        xy = face.vertices[:, :2]
        x0 = max(int(xy[:, 0].min().floor()) - 1, 0)
        y0 = max(int(xy[:, 1].min().floor()) - 1, 0)
        x1 = min(int(xy[:, 0].max().ceil()) + 2, width)
        y1 = min(int(xy[:, 1].max().ceil()) + 2, height)
        if x1 <= x0 or y1 <= y0:
            continue
        k = float(np.clip(RENDER_FACE_PX / max(x1 - x0, y1 - y0), 1.0, _MAX_SUPERSAMPLE))
        h, w = int(np.ceil((y1 - y0) * k)), int(np.ceil((x1 - x0) * k))
        offset = torch.tensor([x0, y0, 0.0], device=device, dtype=face.vertices.dtype)
        local = (face.vertices - offset) * torch.tensor([k, k, 1.0], device=device, dtype=face.vertices.dtype)
        rgb, cover = _shade_face(local.float(), face.eye_coords, h, w, device, look)
        if k > 1.0:
            both = torch.cat([rgb * cover.unsqueeze(-1), cover.unsqueeze(-1)], dim=-1).permute(2, 0, 1)
            small = F.interpolate(both.unsqueeze(0), size=(y1 - y0, x1 - x0), mode="area")[0].permute(1, 2, 0)
            rgb_p, cover = small[..., :3], small[..., 3]
        else:
            rgb_p = rgb[: y1 - y0, : x1 - x0] * cover[: y1 - y0, : x1 - x0].unsqueeze(-1)
            cover = cover[: y1 - y0, : x1 - x0]
        region = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = region * (1.0 - cover.unsqueeze(-1)) + rgb_p
    return (canvas.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def _shade_face(
    verts: torch.Tensor, eye_coords: np.ndarray, h: int, w: int, device: torch.device, look: Appearance
) -> tuple[torch.Tensor, torch.Tensor]:
    """One face rasterised and shaded into an (h, w) tile: colour (h, w, 3) and coverage (h, w)."""
    rig = template_rig()
    tris = torch.as_tensor(rig.triangles, device=device)
    material = torch.as_tensor(rig.material, device=device)
    albedo = torch.as_tensor(rig.albedo, device=device).clone()
    skin = material == 0
    albedo[skin] = albedo[skin] * torch.tensor(look.skin_gain, device=device)
    eye_uv = torch.zeros(verts.shape[0], 2, device=device)
    eye_uv[468:476] = torch.as_tensor(eye_coords, device=device, dtype=torch.float32)
    normals = vertex_normals(verts, tris)
    attrs = torch.cat([albedo, normals, eye_uv], dim=1)
    frags = rasterize(verts, tris, h, w)
    a = interpolate(frags, tris, attrs)
    mat = material[tris[frags.triangle, 0]]
    to_light = torch.tensor(look.to_light, device=device)
    light = to_light / to_light.norm()
    n = a[:, 3:6] / a[:, 3:6].norm(dim=1, keepdim=True).clamp_min(1e-6)
    shade = (look.ambient + _DIFFUSE * (n @ light).clamp_min(0.0)).unsqueeze(1)
    colour = a[:, 0:3] * shade
    eye = mat == MATERIAL_EYE
    if bool(eye.any()):
        colour[eye] = _eye_colour(a[eye, 6:8], device)
    mouth = mat == MATERIAL_MOUTH
    colour[mouth] = a[mouth, 0:3]
    rgb = torch.zeros(h * w, 3, device=device)
    cover = torch.zeros(h * w, device=device)
    rgb[frags.pixel] = colour
    cover[frags.pixel] = 1.0
    return rgb.reshape(h, w, 3), cover.reshape(h, w)


def _eye_colour(rel: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Generic eye: sclera, a brown iris with a dark limbal ring, a black pupil (per pixel)."""
    r = rel.norm(dim=1, keepdim=True)
    sclera = torch.tensor(SCLERA, device=device)
    iris = torch.tensor(IRIS, device=device)
    limbus = torch.tensor(LIMBUS, device=device)
    pupil = torch.tensor(PUPIL, device=device)
    out = torch.where(r < _IRIS_R, iris, sclera)
    out = torch.where((r >= _IRIS_R - _LIMBUS_W) & (r < _IRIS_R), limbus, out)
    # a gentle shadow under the upper lid makes the eye read as a ball, not a sticker
    return torch.where(r < _PUPIL_R, pupil, out) * 0.97
