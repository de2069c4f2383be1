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
    MATERIAL_SKIN,
    PUPIL,
    SCLERA,
    EyePlates,
    FaceShape,
    template_rig,
)
from models.eyes import EYEBALL_RADIUS_MM
from models.render import interpolate, rasterize, vertex_normals
from models.template import IRIS_DIAMETER_MM
from models.texture import TextureStyle, paint_skin

_DIFFUSE = 0.62
# Ranges of the per-mask face shape (FaceShape): models/README.md, "Head pose: a shorter lower face".
LOWER_HEIGHT = (0.78, 0.94)
LOWER_WIDTH = (0.92, 1.08)


@dataclass(frozen=True)
class Appearance:
    """Rendering nuisance parameters, and the face's shape below the eyes: nothing here comes from the
    patient.

    Drawn afresh for every masked photo or video (one draw per video, so nothing flickers), so that two
    masks of one person share no appearance or shape cue that a recogniser could link them by (Meeus et
    al.'s Mask2Mask attack): what repeats between a person's masks is then only pose, motion and the eyes.
    """

    skin_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)  # multiplies the template albedo
    to_light: tuple[float, float, float] = (-0.25, -0.45, -1.0)  # towards the light (image axes)
    ambient: float = 0.42
    background: tuple[float, float, float] = BACKGROUND
    texture: TextureStyle = TextureStyle()
    shape: FaceShape = FaceShape()

    @classmethod
    def random(cls, rng: np.random.Generator) -> Appearance:
        tone = float(rng.uniform(0.0, 1.0))  # lighter .. darker skin, warm .. neutral
        gain = (1.05 - 0.35 * tone, 1.05 - 0.38 * tone + float(rng.uniform(-0.04, 0.04)), 1.05 - 0.40 * tone)
        az, el = np.radians(rng.uniform(-15, 15)), np.radians(rng.uniform(5, 30))
        light = (float(np.sin(az) * np.cos(el)), float(-np.sin(el)), float(-np.cos(az) * np.cos(el)))
        grey = float(rng.uniform(0.30, 0.62))
        tint = rng.uniform(-0.03, 0.03, size=3)
        return cls(
            skin_gain=gain,
            to_light=light,
            ambient=float(rng.uniform(0.34, 0.5)),
            background=(grey + float(tint[0]), grey + float(tint[1]), grey + float(tint[2])),
            texture=TextureStyle.random(rng),
            # drawn last, so that the other draws of a seed stay what they were before it was added
            shape=FaceShape(
                lower_height=float(rng.uniform(LOWER_HEIGHT[0], LOWER_HEIGHT[1])),
                lower_width=float(rng.uniform(LOWER_WIDTH[0], LOWER_WIDTH[1])),
            ),
        )


_PUPIL_R, _IRIS_R, _LIMBUS_W = 0.2, 0.5, 0.06  # in iris diameters


@dataclass(frozen=True)
class PosedFace:
    vertices: torch.Tensor  # (480, 3) frame pixels + depth
    eye_coords: EyePlates  # eye-plate geometry and the driven iris and lids, for the eye shader


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
    verts: torch.Tensor, plates: EyePlates, h: int, w: int, device: torch.device, look: Appearance
) -> tuple[torch.Tensor, torch.Tensor]:
    """One face rasterised and shaded into an (h, w) tile: colour (h, w, 3) and coverage (h, w)."""
    rig = template_rig()
    tris = torch.as_tensor(rig.triangles, device=device)
    material = torch.as_tensor(rig.material, device=device)
    uv = torch.as_tensor(rig.uv, device=device)
    eye_local = torch.zeros(verts.shape[0], 2, device=device)
    eye_local[468:476] = torch.as_tensor(plates.local, device=device, dtype=torch.float32)
    normals = vertex_normals(verts, tris)
    attrs = torch.cat([uv, normals, eye_local], dim=1)
    frags = rasterize(verts, tris, h, w)
    a = interpolate(frags, tris, attrs)
    first = tris[frags.triangle, 0]
    mat = material[first]
    to_light = torch.tensor(look.to_light, device=device)
    light = to_light / to_light.norm()
    n = a[:, 2:5] / a[:, 2:5].norm(dim=1, keepdim=True).clamp_min(1e-6)
    lambert = (n @ light).clamp_min(0.0)
    shade = (look.ambient + _DIFFUSE * lambert).unsqueeze(1)
    colour = torch.zeros(a.shape[0], 3, device=device)
    skin = mat == MATERIAL_SKIN
    if bool(skin.any()):
        open_paint, shut_paint = _texture(look, device)
        grid = a[skin, 0:2].view(1, 1, -1, 2)
        albedo = F.grid_sample(open_paint, grid, mode="bilinear", align_corners=False)[0, :, 0].T
        if float(plates.closure.max()) > _CLOSING_FROM:  # most frames: no eye shut enough to change
            # each eye's region turns from the open to the shut painting over the last stretch of closing
            shut = F.grid_sample(shut_paint, grid, mode="bilinear", align_corners=False)[0, :, 0].T
            closure = torch.as_tensor(plates.closure, device=device, dtype=shut.dtype)
            t = ((closure - _CLOSING_FROM) / _CLOSING_SPAN).clamp(0.0, 1.0)
            closing = (shut[:, 3:5] * (t * t * (3.0 - 2.0 * t))).sum(dim=1, keepdim=True).clamp(0.0, 1.0)
            albedo = albedo * (1.0 - closing) + shut[:, 0:3] * closing
        colour[skin] = albedo * torch.tensor(look.skin_gain, device=device) * shade[skin]
    eye = mat == MATERIAL_EYE
    if bool(eye.any()):
        which = torch.div(first[eye] - 468, 4, rounding_mode="floor")
        colour[eye] = _eye_colour(a[eye, 5:7], which, plates, device) * (0.75 + 0.25 * shade[eye])
    mouth = mat == MATERIAL_MOUTH
    colour[mouth] = torch.as_tensor(rig.albedo, device=device)[first[mouth]]
    rgb = torch.zeros(h * w, 3, device=device)
    cover = torch.zeros(h * w, device=device)
    rgb[frags.pixel] = colour
    cover[frags.pixel] = 1.0
    return rgb.reshape(h, w, 3), cover.reshape(h, w)


# closure (see avatar.eye_closure) at which an eye's painting starts turning closed, and over how much
# more closure it completes: a narrowed eye keeps its crease and upturned lashes, a shut one loses them
_CLOSING_FROM, _CLOSING_SPAN = 0.65, 0.3

_TEXTURES: dict[tuple[TextureStyle, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _texture(look: Appearance, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The painted skin for this appearance draw, painted once per draw, on the device: the open painting
    (1, 3, H, W), and the shut one with each eye's region weight (1, 5, H, W: RGB, eye 0, eye 1), apart so
    that frames with no eye shut sample only the first (see texture.PaintedSkin)."""
    key = (look.texture, str(device))
    if key not in _TEXTURES:
        if len(_TEXTURES) >= 4:  # one draw per photo or video: keep only the latest few
            _TEXTURES.pop(next(iter(_TEXTURES)))
        skin = paint_skin(template_rig().vertices, look.texture)
        shut = np.concatenate([skin.closed, skin.eye_region], axis=2)
        _TEXTURES[key] = (_on_device(skin.open, device), _on_device(shut, device))
    return _TEXTURES[key]


def _on_device(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, C) image as a contiguous (1, C, H, W) tensor for grid_sample."""
    return torch.as_tensor(img, device=device).permute(2, 0, 1).unsqueeze(0).contiguous()


def _lid_height(u: torch.Tensor, lid_u: np.ndarray, lid_v: np.ndarray, device: torch.device) -> torch.Tensor:
    """Piecewise-linear lid height at positions ``u`` along the eye axis (ends held)."""
    order = np.argsort(lid_u)
    xs = torch.as_tensor(lid_u[order], device=device, dtype=torch.float32)
    ys = torch.as_tensor(lid_v[order], device=device, dtype=torch.float32)
    k = torch.searchsorted(xs, u.contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = xs[k - 1], xs[k], ys[k - 1], ys[k]
    t = ((u - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


def _eye_colour(
    local: torch.Tensor, which: torch.Tensor, plates: EyePlates, device: torch.device
) -> torch.Tensor:
    """Generic eyeball per pixel: shaded sclera, a textured iris with a dark limbal ring, a pupil with a
    catch-light, and the shadow the upper lid casts on the ball (deep when the eye is narrowed)."""
    out = torch.zeros(local.shape[0], 3, device=device)
    d = plates.iris_diameter
    for e in range(2):
        sel = which == e
        if not bool(sel.any()):
            continue
        u, v = local[sel, 0], local[sel, 1]
        iris_u, iris_v = (float(x) for x in plates.iris_uv[e])
        # the iris sits on a ball: turned away from the camera it narrows (foreshortening)
        ball = EYEBALL_RADIUS_MM / IRIS_DIAMETER_MM * d
        cos_u = float(np.cos(np.arcsin(np.clip((iris_u - float(plates.eye_width[e]) / 2) / ball, -0.9, 0.9))))
        cos_v = float(np.cos(np.arcsin(np.clip(iris_v / ball, -0.9, 0.9))))
        rel = torch.stack([(u - iris_u) / (d * cos_u), (v - iris_v) / (d * cos_v)], dim=1)
        r = rel.norm(dim=1)
        half = float(plates.eye_width[e]) / 2
        corner = ((u - half).abs() / half).clamp(0, 1)
        sclera = torch.tensor(SCLERA, device=device) * (1.0 - 0.22 * corner**2).unsqueeze(1)
        angle = torch.atan2(rel[:, 1], rel[:, 0])
        streak = 1.0 + 0.12 * torch.sin(angle * 17.0) * torch.sin(angle * 5.0 + 1.3)
        ring = 0.8 + 0.35 * ((r - _PUPIL_R) / (_IRIS_R - _PUPIL_R)).clamp(0, 1)
        iris = torch.tensor(IRIS, device=device) * (streak * ring).unsqueeze(1)
        limbus_t = ((r - (_IRIS_R - _LIMBUS_W)) / _LIMBUS_W).clamp(0, 1).unsqueeze(1)
        iris = iris * (1 - limbus_t) + torch.tensor(LIMBUS, device=device) * limbus_t
        col = torch.where((r < _IRIS_R).unsqueeze(1), iris, sclera)
        col = torch.where((r < _PUPIL_R).unsqueeze(1), torch.tensor(PUPIL, device=device), col)
        glint = ((rel - torch.tensor([-0.12, -0.14], device=device)).norm(dim=1) < 0.07).unsqueeze(1)
        col = torch.where(glint, torch.tensor((0.95, 0.95, 0.95), device=device), col)
        upper = _lid_height(u, plates.lid_u[e, 0], plates.lid_v[e, 0], device)
        below = ((upper - v) / (0.45 * d)).clamp(0, 1)
        out[sel] = col * (0.35 + 0.65 * below).unsqueeze(1)
    return out
