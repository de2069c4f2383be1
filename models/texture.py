"""The template's painted skin: a procedural texture in the template's own frontal coordinates.

Why: face readers (people and programs) locate lids, lashes and brows by their darkness against skin.
A flat-shaded mannequin gives them too little to lock on to, so eye signals read poorly even when the
lids move correctly. The texture paints what a real eye region shows — lashes along the upper lid
margin, a lid crease, the shadow of the orbit, brows made of hair strokes, lips and nostrils — drawn
procedurally by this module (no image asset, no real person's photo).

Painting happens in the *rest* template's (x, y) plane, and each vertex keeps its rest coordinates as
its texture coordinate, so the paint moves with the geometry: when a lid closes, its lashes and skin
slide down with the lid margin. Texture coordinates are returned in ``grid_sample``'s [-1, 1] range.
The eyes are painted twice, open and shut (``PaintedSkin``): a shut lid is not an open one stretched.
The texture is the same for every patient apart from the random per-mask draws of ``TextureStyle``
(brow and lash darkness, skin grain), which keep masks of one person unlinkable.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.template import BROWS, EYE_INNER, EYE_OUTER, LIPS_INNER, LIPS_OUTER, LOWER_LID, UPPER_LID

PX_PER_UNIT = 48.0  # texture pixels per template unit (about 0.2 mm): lashes stay several pixels wide
_MARGIN = 0.5  # template units of texture beyond the mesh on every side
# Depth of the dark band where a shut eye's lids meet, in eye widths, on each lid's margin: the lashes of
# both lids and the shadow of the fold between them. A landmark reader outlines a shut eye on that band.
# Drawn as the thin lash line alone (0.055), dlib read our shut eyes at 0.55-0.65 of their open EAR, with
# a frame-to-frame SD of 0.075-0.13: on livep_d3 above the eval's blink threshold in 16-22% of the shut
# frames, which split one closure into several blinks (models/README.md, "The meeting band").
CLOSED_BAND = 0.12

SKIN = (0.80, 0.64, 0.56)
BROW_HAIR = (0.16, 0.11, 0.08)
LASH = (0.05, 0.04, 0.035)
LIP = (0.68, 0.40, 0.38)
NOSTRIL = (0.22, 0.12, 0.10)


@dataclass(frozen=True)
class TextureStyle:
    """Per-mask nuisance draws of the painted texture (nothing here comes from the patient)."""

    brow_density: float = 0.8  # opacity of brow hair, 0..1
    lash_density: float = 0.95
    grain_seed: int = 0
    grain: float = 0.035  # amplitude of the skin's low-frequency mottling

    @classmethod
    def random(cls, rng: np.random.Generator) -> TextureStyle:
        return cls(
            brow_density=float(rng.uniform(0.65, 0.9)),
            lash_density=float(rng.uniform(0.85, 1.0)),
            grain_seed=int(rng.integers(0, 2**31 - 1)),
            grain=float(rng.uniform(0.02, 0.05)),
        )


@dataclass(frozen=True)
class TextureFrame:
    """Where the texture sits in template coordinates."""

    x0: float
    y0: float
    width: int
    height: int

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, dtype=np.float64) - [self.x0, self.y0]) * PX_PER_UNIT

    def to_uv(self, xy: np.ndarray) -> np.ndarray:
        """Template (x, y) to grid_sample coordinates in [-1, 1] (align_corners=False)."""
        px = self.to_px(xy) + 0.5
        return np.stack([2 * px[..., 0] / self.width - 1, 2 * px[..., 1] / self.height - 1], axis=-1)


def texture_frame(vertices: np.ndarray) -> TextureFrame:
    lo = vertices[:, :2].min(0) - _MARGIN
    hi = vertices[:, :2].max(0) + _MARGIN
    size = np.ceil((hi - lo) * PX_PER_UNIT).astype(int)
    return TextureFrame(x0=float(lo[0]), y0=float(lo[1]), width=int(size[0]), height=int(size[1]))


def _blur(img: np.ndarray, sigma_units: float) -> np.ndarray:
    s = max(sigma_units * PX_PER_UNIT, 0.3)
    return cv2.GaussianBlur(img, (0, 0), s)


def _poly_mask(frame: TextureFrame, polys: list[np.ndarray], soft: float = 0.0) -> np.ndarray:
    mask = np.zeros((frame.height, frame.width), np.float32)
    for p in polys:
        pts = np.round(frame.to_px(p) * 16).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_AA, shift=4)
    return _blur(mask, soft) if soft > 0 else mask


def _line_mask(frame: TextureFrame, line: np.ndarray, width_units: float, soft: float) -> np.ndarray:
    mask = np.zeros((frame.height, frame.width), np.float32)
    pts = np.round(frame.to_px(line) * 16).astype(np.int32)
    cv2.polylines(
        mask,
        [pts],
        False,
        1.0,
        thickness=max(1, round(width_units * PX_PER_UNIT)),
        lineType=cv2.LINE_AA,
        shift=4,
    )
    return _blur(mask, soft) if soft > 0 else mask


def _over(img: np.ndarray, colour: tuple[float, float, float], alpha: np.ndarray) -> None:
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    img[:] = img * (1.0 - a) + np.asarray(colour, np.float32) * a


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """n points evenly spaced along a polyline."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.r_[0.0, np.cumsum(seg)]
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, k]) for k in range(points.shape[1])], axis=1)


def _upper_margin(v: np.ndarray, e: int) -> np.ndarray:
    """Upper lid margin from outer to inner corner (template x, y)."""
    return np.concatenate([v[[EYE_OUTER[e]], :2], v[list(UPPER_LID[e]), :2], v[[EYE_INNER[e]], :2]])


def _lower_margin(v: np.ndarray, e: int) -> np.ndarray:
    return np.concatenate([v[[EYE_OUTER[e]], :2], v[list(LOWER_LID[e]), :2], v[[EYE_INNER[e]], :2]])


def _strokes(
    frame: TextureFrame, roots: np.ndarray, dirs: np.ndarray, length: np.ndarray, width_units: float
) -> np.ndarray:
    """Short anti-aliased hair strokes (lashes, brow hairs)."""
    mask = np.zeros((frame.height, frame.width), np.float32)
    thick = max(1, round(width_units * PX_PER_UNIT))
    for r, d, ln in zip(roots, dirs, length, strict=True):
        a = np.round(frame.to_px(r) * 16).astype(np.int32)
        b = np.round(frame.to_px(r + d * ln) * 16).astype(np.int32)
        cv2.line(mask, tuple(int(x) for x in a), tuple(int(x) for x in b), 1.0, thick, cv2.LINE_AA, 4)
    return mask


@dataclass(frozen=True)
class PaintedSkin:
    """The painted skin twice over — eyes open and eyes closed — and where each eye's region is.

    Why two: a closing lid stretches the skin between its margin and the crease over the eye. Painted
    for an open eye (crease, darker lid, lashes curling up), that skin stretched shut reads as an open
    eye's outline — a dome over a lash fringe — to people and to landmark readers alike (models/README.md,
    "closed eyes"). So each eye's region blends from the open to the closed painting as that eye closes
    (``models.compose``): a smooth lid, a dark band where the lids meet, and the lashes hanging from it.
    """

    open: np.ndarray  # (H, W, 3) float32 sRGB 0..1
    closed: np.ndarray  # (H, W, 3) the same skin with both eyes painted closed
    eye_region: np.ndarray  # (H, W, 2) float32 0..1: how much each pixel belongs to eye 0 / eye 1
    frame: TextureFrame


def paint_skin(vertices: np.ndarray, style: TextureStyle) -> PaintedSkin:
    """The skin painted with the eyes open and closed (see :class:`PaintedSkin`), in linear-ish sRGB."""
    v = vertices[:468].astype(np.float64)
    frame = texture_frame(v)
    rng = np.random.default_rng(style.grain_seed)
    h, w = frame.height, frame.width
    img = np.empty((h, w, 3), np.float32)
    img[:] = SKIN
    # low-frequency mottling: a few octaves of blurred noise
    grain = np.zeros((h, w), np.float32)
    for sigma, weight in ((1.2, 1.0), (0.4, 0.5), (0.12, 0.25)):
        noise = _blur(rng.standard_normal((h, w)).astype(np.float32), sigma)
        grain += weight * noise / max(float(noise.std()), 1e-6)
    img *= (1.0 + style.grain * grain / 1.5)[..., None]
    # warmth on the cheeks and the nose tip
    yy, xx = np.mgrid[0:h, 0:w]
    for spot, radius in (((-3.4, 1.6), 1.6), ((3.4, 1.6), 1.6), ((0.0, 0.8), 0.8)):
        c = frame.to_px(np.array(spot))
        d2 = ((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (radius * PX_PER_UNIT) ** 2
        flush = 0.06 * np.exp(-d2)
        img[..., 1] *= 1.0 - flush
        img[..., 2] *= 1.0 - 0.8 * flush
    closed = img.copy()
    shade = np.ones((h, w), np.float32)  # multiplicative darkening (orbit, crease), eyes open
    shade_closed = np.ones((h, w), np.float32)  # the same with the eyes closed
    eye_region = np.zeros((h, w, 2), np.float32)
    lash_rng = np.random.default_rng([style.grain_seed, 1])
    for e in range(2):
        upper = _upper_margin(v, e)
        lower = _lower_margin(v, e)
        centre = 0.5 * (v[EYE_OUTER[e], :2] + v[EYE_INNER[e], :2])
        width = float(np.linalg.norm(v[EYE_INNER[e], :2] - v[EYE_OUTER[e], :2]))
        # the orbit's shadow: an ellipse from brow to cheek, deepest at the inner corner
        orbit = np.zeros((h, w), np.float32)
        c = frame.to_px(centre + np.array([0.15 * (1 if e == 0 else -1) * width, -0.15 * width]))
        axes = (int(0.85 * width * PX_PER_UNIT), int(0.55 * width * PX_PER_UNIT))
        cv2.ellipse(orbit, (int(c[0]), int(c[1])), axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        orbit_shade = 1.0 - 0.16 * _blur(orbit, 0.35 * width)
        shade *= orbit_shade
        shade_closed *= orbit_shade
        # this eye's region: the whole orbit, soft-edged, so the closed painting blends in unseen
        eye_region[..., e] = np.clip(_blur(orbit, 0.2 * width) * 1.6, 0.0, 1.0)
        # lid crease: a soft fold line above the upper margin, following its curve
        crease = upper.copy()
        lift = 0.38 * width * np.sin(np.linspace(0.15, np.pi - 0.15, len(crease)))
        crease[:, 1] -= lift
        shade *= 1.0 - 0.28 * _line_mask(frame, _resample(crease, 24), 0.05 * width, 0.035 * width)
        # upper lid skin a touch darker than the brow bone
        lid = np.concatenate([upper, crease[::-1]])
        shade *= 1.0 - 0.08 * _poly_mask(frame, [lid], 0.04 * width)
        # lower lid: a faint line and lower lashes
        shade *= 1.0 - 0.25 * _line_mask(frame, _resample(lower, 24), 0.025 * width, 0.012 * width)
        # upper lashes: a dense dark band along the margin plus strokes curling up and out
        line = _resample(upper, 40)
        taper = np.sin(np.linspace(0.25, np.pi - 0.1, len(line))) ** 0.6
        band = _line_mask(frame, line, 0.055 * width, 0.01 * width)
        roots = line[2:-3]
        out = -1.0 if e == 0 else 1.0  # outward = towards the outer corner (image x sign)
        ang = np.radians(rng.uniform(95, 130, len(roots)))
        dirs = np.stack([-out * np.cos(ang), -np.sin(ang)], axis=1)
        lengths = 0.11 * width * taper[2:-3] * rng.uniform(0.7, 1.2, len(roots))
        strokes = _strokes(frame, roots, dirs, lengths, 0.014 * width)
        _over(img, LASH, style.lash_density * np.maximum(band, _blur(strokes, 0.004 * width)))
        # closed: the upper margin comes down onto the lower one. The lid skin is smooth (no crease, no
        # darker lid), the margin's lash band becomes the closed lid line, deepened on both lids into the
        # dark band where they meet (CLOSED_BAND), and the lashes hang down and out from there over the
        # lower lid's skin, which is where they show on a closed eye
        closed_line = _resample(lower, 40)
        hang_roots = closed_line[3:-3]
        hang_taper = np.sin(np.linspace(0.3, np.pi - 0.15, len(closed_line))) ** 0.6
        hang = np.radians(lash_rng.uniform(55, 80, len(hang_roots)))
        hang_dirs = np.stack([out * np.cos(hang), np.sin(hang)], axis=1)
        hang_len = 0.1 * width * hang_taper[3:-3] * lash_rng.uniform(0.7, 1.2, len(hang_roots))
        hanging = _strokes(frame, hang_roots, hang_dirs, hang_len, 0.014 * width)
        _over(closed, LASH, style.lash_density * band)
        meeting = np.maximum(
            _line_mask(frame, line, CLOSED_BAND * width, 0.02 * width),
            _line_mask(frame, closed_line, CLOSED_BAND * width, 0.02 * width),
        )
        _over(closed, LASH, 0.85 * style.lash_density * meeting)
        _over(closed, LASH, 0.9 * style.lash_density * _blur(hanging, 0.004 * width))
    # what follows is the same on both paintings: painted once onto the pair (open, closed)
    skins = np.stack([img * shade[..., None], closed * shade_closed[..., None]])
    # brows: hair strokes filling the brow region, denser in the middle, soft at the edges
    for brow in BROWS:
        top = v[list(brow[:5]), :2]
        bottom = v[list(brow[5:]), :2][::-1]
        region = _poly_mask(frame, [np.concatenate([top, bottom[::-1]])], 0.08)
        n = 260
        t = rng.uniform(0, 1, n)
        s = rng.uniform(0.1, 0.9, n)
        top_pts = np.stack([np.interp(t, np.linspace(0, 1, 5), top[:, k]) for k in range(2)], 1)
        bot_pts = np.stack([np.interp(t, np.linspace(0, 1, 5), bottom[:, k]) for k in range(2)], 1)
        roots = bot_pts + s[:, None] * (top_pts - bot_pts)
        lateral = np.sign(top[0, 0] - top[-1, 0])  # towards the brow's tail
        ang = np.radians(rng.uniform(20, 45, n))
        dirs = np.stack([lateral * np.cos(ang), -np.sin(ang)], axis=1)
        hairs = _strokes(frame, roots, dirs, rng.uniform(0.25, 0.5, n), 0.035)
        alpha = style.brow_density * np.clip(_blur(hairs, 0.02) * 1.4, 0, 1) * np.clip(region * 1.3, 0, 1)
        _over(skins, BROW_HAIR, alpha)
    # lips and nostrils
    lips = _poly_mask(frame, [v[list(LIPS_OUTER), :2]], 0.06) - _poly_mask(frame, [v[list(LIPS_INNER), :2]])
    _over(skins, LIP, 0.85 * np.clip(lips, 0, 1))
    nostrils = np.zeros((h, w), np.float32)
    for cx in (-0.8, 0.8):
        c = frame.to_px(np.array([cx, 1.78]))
        cv2.ellipse(
            nostrils,
            (int(c[0]), int(c[1])),
            (int(0.28 * PX_PER_UNIT), int(0.13 * PX_PER_UNIT)),
            -20 if cx < 0 else 20,
            0,
            360,
            1.0,
            -1,
            cv2.LINE_AA,
        )
    _over(skins, NOSTRIL, 0.8 * _blur(nostrils, 0.06))
    skins = np.clip(skins, 0.0, 1.0)
    return PaintedSkin(open=skins[0], closed=skins[1], eye_region=eye_region, frame=frame)
