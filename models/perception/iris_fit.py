"""The iris centre fitted to the picture: where the dark disc of the iris lies inside the lid opening.

Why: the eye networks regress the iris centre from the whole eye region, and like every landmark
regressor they pull it toward where irises usually sit. A gaze off the middle reads short (a 15° squint
phantom read 4.5–9.7°), and against an independent reader of the original videos (dlib's darkest-region
pupil, the evaluation tool's) the network's horizontal iris position agreed with r 0.575 over the ten
shared videos. The picture itself says where the iris is: the darkest disc of the iris's size within the
opening between the lids, against the brighter sclera around it. A matched filter (mean brightness of a
ring around a candidate centre minus the mean inside its disc, both over the opening only) finds it near
the network's centre (models/README.md, "The iris fitted to the picture").

Only the centre's position ALONG the eye (corner to corner) is taken from the fit, and all five iris
points move with it: the network's size stays, and so does its height across the eye, where the lids
cover the disc's top and bottom and the fit has little to go on. The lids themselves are the network's.
Vectorised over all eyes of a batch, on the frames' device, so it costs one small convolution per eye.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import roi as roi_ops

FIT_RADIUS_PX = 10  # the iris radius in crop pixels: the disc is matched at this scale
CROP_DIAMETERS = 3.0  # crop side, in iris diameters: the search, plus the disc and the ring beyond it
# the fitted centre stays within this many iris diameters of the network's, along the eye: at 0.5 it
# jumped to the dark inner corner of narrowed eyes on 2.8% of frames, at 0.3 on 0.8%, and a 15° squint
# (0.27 diameters, two thirds of it already read by the network) stays inside
SEARCH_ALONG = 0.3
SEARCH_ACROSS = 0.3  # ... and across the eye (the height is not taken, but it must be free to fit)
RING_FROM, RING_TO = 1.15, 1.6  # the sclera ring around the disc, in iris radii (the limbus is between)
MIN_DISC_COVER = 0.25  # of a candidate disc that must lie in the opening (a nearly shut eye is not fitted)
MIN_RING_COVER = 0.1
MIN_CONTRAST = 2.0  # grey levels of sclera over iris below which the network's centre stays
SUPERSAMPLE = 2  # crops are sampled twice as finely and averaged down, so large irises do not alias

# The eye ring of a 71-point eye contour (its first 16 points): 0 outer corner, 1-7 lower lid (outer
# to inner), 8 inner corner, 9-15 upper lid (outer to inner); walked around as a polygon.
RING_OUTER, RING_INNER = 0, 8
OPENING_POLYGON = (0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 14, 13, 12, 11, 10, 9)
_LUMA = (0.299, 0.587, 0.114)


def _kernels(device: torch.device) -> torch.Tensor:
    """(2, 1, k, k): the disc and the ring around it, both of radius FIT_RADIUS_PX."""
    reach = int(RING_TO * FIT_RADIUS_PX) + 1
    t = torch.arange(-reach, reach + 1, dtype=torch.float32, device=device)
    d = torch.hypot(t[None, :], t[:, None])
    disc = (d <= FIT_RADIUS_PX).float()
    ring = ((d > RING_FROM * FIT_RADIUS_PX) & (d <= RING_TO * FIT_RADIUS_PX)).float()
    return torch.stack([disc, ring])[:, None]


def eye_crop_rois(rings: torch.Tensor, iris: torch.Tensor) -> torch.Tensor:
    """(n, 16, 2) eye rings and (n, 5, 2) irises -> (n, 4) crop ROIs centred on the network's iris,
    CROP_DIAMETERS iris diameters wide, rotated so that the eye line runs along the crop's x axis.

    The x axis points from the ring's first corner to its second, whatever side of the face the eye
    is on; callers read the fit as a position along that axis."""
    axis = rings[:, RING_INNER] - rings[:, RING_OUTER]
    rotation = torch.atan2(axis[:, 1], axis[:, 0])
    b = iris[:, 1:5]
    diameter = 0.5 * ((b[:, 0] - b[:, 2]).norm(dim=-1) + (b[:, 1] - b[:, 3]).norm(dim=-1))
    centre = iris[:, 0]
    return torch.stack([centre[:, 0], centre[:, 1], diameter * CROP_DIAMETERS, rotation], dim=-1)


def _to_crop(points: torch.Tensor, rois: torch.Tensor, res: int) -> torch.Tensor:
    """Frame pixels (n, P, 2) -> crop pixels of a ``res`` crop (the inverse of roi.project)."""
    cx, cy, size, rot = (rois[:, i, None] for i in range(4))
    dx, dy = points[..., 0] - cx, points[..., 1] - cy
    cos, sin = torch.cos(rot), torch.sin(rot)
    u = (cos * dx + sin * dy) / size
    v = (-sin * dx + cos * dy) / size
    return torch.stack([(u + 0.5) * res, (v + 0.5) * res], dim=-1)


def opening_mask(polygon: torch.Tensor, res: int) -> torch.Tensor:
    """(n, P, 2) polygons in crop pixels -> (n, res, res) float, 1 where a pixel centre is inside
    (even-odd rule)."""
    c = torch.arange(res, dtype=polygon.dtype, device=polygon.device) + 0.5
    py, px = c[None, :, None, None], c[None, None, :, None]  # (1, res, 1, 1), (1, 1, res, 1)
    a = polygon[:, None, None, :, :]  # (n, 1, 1, P, 2)
    b = torch.roll(polygon, -1, dims=1)[:, None, None, :, :]
    ay, by, ax, bx = a[..., 1], b[..., 1], a[..., 0], b[..., 0]
    straddles = (ay > py) != (by > py)
    x_cross = ax + (py - ay) * (bx - ax) / torch.where(by == ay, torch.ones_like(by), by - ay)
    crossings = (straddles & (px < x_cross)).sum(dim=-1)
    return (crossings % 2 == 1).float()


def _window(res: int, reach: float) -> tuple[int, int]:
    """The crop indices [lo, hi) whose pixel centres lie within ``reach`` crop pixels of the centre."""
    grid = torch.arange(res, dtype=torch.float64) + 0.5 - res / 2
    inside = torch.nonzero(grid.abs() <= reach).flatten()
    return int(inside[0]), int(inside[-1]) + 1


def fit_along_eye(crops: torch.Tensor, opening: torch.Tensor) -> torch.Tensor:
    """Grey crops (n, res, res), centred on the network's iris with the eye line along x, and their
    openings -> (n,) shift along x, in crop pixels, of the best dark disc; 0 where no disc could be
    fitted.

    The filter is evaluated only at the candidate centres inside the search window (a valid
    convolution over the window plus the kernel's reach): the same scores as a full-crop convolution at
    a twentieth of its cost."""
    n, res, _ = crops.shape
    diameter = 2 * FIT_RADIUS_PX
    r0, r1 = _window(res, SEARCH_ACROSS * diameter)
    c0, c1 = _window(res, SEARCH_ALONG * diameter)
    kern = _kernels(crops.device)
    reach = kern.shape[-1] // 2
    maps = F.pad(torch.stack([opening, opening * crops], dim=1), (reach, reach, reach, reach))
    maps = maps[:, :, r0 : r1 + 2 * reach, c0 : c1 + 2 * reach]
    rows, cols = r1 - r0, c1 - c0
    sums = F.conv2d(maps.reshape(n * 2, 1, *maps.shape[-2:]), kern).reshape(n, 2, 2, rows, cols)
    (disc_n, ring_n), (disc_s, ring_s) = sums[:, 0].unbind(1), sums[:, 1].unbind(1)
    disc_area, ring_area = kern[0].sum(), kern[1].sum()
    valid = (disc_n > MIN_DISC_COVER * disc_area) & (ring_n > MIN_RING_COVER * ring_area)
    score = ring_s / ring_n.clamp(min=1e-6) - disc_s / disc_n.clamp(min=1e-6)
    score = torch.where(valid, score, torch.full_like(score, -torch.inf))
    best, k = score.reshape(n, -1).max(dim=1)
    row, col = k // cols, k % cols
    # sub-pixel: a parabola through the best column and its neighbours (none beyond the window)
    edged = F.pad(score, (1, 1), value=-torch.inf)
    left = edged[torch.arange(n), row, col]
    right = edged[torch.arange(n), row, col + 2]
    curvature = left - 2 * best + right
    ok = torch.isfinite(left) & torch.isfinite(right) & (curvature < 0)
    sub = torch.where(ok, 0.5 * (left - right) / torch.where(ok, curvature, -torch.ones_like(curvature)), 0.0)
    shift = (c0 + col).to(crops.dtype) + 0.5 - res / 2 + sub.clamp(-0.5, 0.5)
    fitted = torch.isfinite(best) & (best >= MIN_CONTRAST)
    return torch.where(fitted, shift, torch.zeros_like(shift))


def fit_irises(frame: torch.Tensor, rings: torch.Tensor, iris: torch.Tensor) -> torch.Tensor:
    """The irises of one frame with their centres fitted along the eye.

    frame: (1, 3, H, W) RGB 0..255; rings: (n, 16, >=2) eye rings (the eye contours' first 16 points);
    iris: (n, 5, 3) network iris points, centre first. Returns (n, 5, 3): the same points moved along
    the eye line by the fitted shift."""
    if iris.shape[0] == 0:
        return iris
    res = int(round(CROP_DIAMETERS * 2 * FIT_RADIUS_PX))
    rois = eye_crop_rois(rings[..., :2], iris[..., :2])
    # sampled in colour and made grey afterwards: the same (sampling is linear) without a whole grey frame
    fine = roi_ops.crop(frame, rois, res * SUPERSAMPLE)
    luma = torch.tensor(_LUMA, device=frame.device, dtype=frame.dtype).reshape(1, 3, 1, 1)
    crops = F.avg_pool2d((fine * luma).sum(dim=1, keepdim=True), SUPERSAMPLE)[:, 0]
    polygon = _to_crop(rings[:, list(OPENING_POLYGON), :2], rois, res)
    shift = fit_along_eye(crops, opening_mask(polygon, res))
    step = rois[:, 2] / res  # frame pixels per crop pixel
    along = torch.stack([torch.cos(rois[:, 3]), torch.sin(rois[:, 3])], dim=-1)
    moved = iris.clone()
    moved[..., :2] = iris[..., :2] + (shift * step)[:, None, None] * along[:, None, :]
    return moved
