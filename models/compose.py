"""Shade rasterised template faces into an output frame: a fully synthetic picture.

The output starts from a plain background; only template faces are drawn on it. No pixel of the input
frame is read here, which is what makes the mask fail-safe by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

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

_TO_LIGHT = torch.tensor([-0.25, -0.45, -1.0])  # towards a light at the camera's upper left (image axes)
_AMBIENT, _DIFFUSE = 0.42, 0.62
_PUPIL_R, _IRIS_R, _LIMBUS_W = 0.2, 0.5, 0.06  # in iris diameters


@dataclass(frozen=True)
class PosedFace:
    vertices: torch.Tensor  # (480, 3) frame pixels + depth
    eye_coords: np.ndarray  # (8, 2) eye-plate vertices relative to the iris centre, in iris diameters


def render_faces(faces: list[PosedFace], height: int, width: int, device: torch.device) -> np.ndarray:
    """Render template faces over a plain background: (height, width, 3) uint8 RGB."""
    canvas = torch.tensor(BACKGROUND, device=device).expand(height * width, 3).clone()
    if faces:
        rig = template_rig()
        base_t = torch.as_tensor(rig.triangles, device=device)
        n_v = rig.vertices.shape[0]
        verts = torch.cat([f.vertices.float() for f in faces])
        tris = torch.cat([base_t + i * n_v for i in range(len(faces))])
        material = torch.as_tensor(rig.material, device=device).repeat(len(faces))
        albedo = torch.as_tensor(rig.albedo, device=device).repeat(len(faces), 1)
        eye_uv = torch.zeros(verts.shape[0], 2, device=device)
        for i, f in enumerate(faces):
            eye_uv[i * n_v + 468 : i * n_v + 476] = torch.as_tensor(
                f.eye_coords, device=device, dtype=torch.float32
            )
        normals = vertex_normals(verts, tris)
        attrs = torch.cat([albedo, normals, eye_uv, material.unsqueeze(1).float()], dim=1)
        frags = rasterize(verts, tris, height, width)
        a = interpolate(frags, tris, attrs)
        mat = material[tris[frags.triangle, 0]]
        light = (_TO_LIGHT / _TO_LIGHT.norm()).to(device)
        n = a[:, 3:6] / a[:, 3:6].norm(dim=1, keepdim=True).clamp_min(1e-6)
        shade = (_AMBIENT + _DIFFUSE * (n @ light).clamp_min(0.0)).unsqueeze(1)
        colour = a[:, 0:3] * shade
        eye = mat == MATERIAL_EYE
        if bool(eye.any()):
            colour[eye] = _eye_colour(a[eye, 6:8], device)
        mouth = mat == MATERIAL_MOUTH
        colour[mouth] = a[mouth, 0:3]
        canvas[frags.pixel] = colour
    return (canvas.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).reshape(height, width, 3).cpu().numpy()


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
