"""A measured, not landed, variant of the iris position: the darkest region of the lid opening.

The eval tool reads a pupil as the darkness-weighted centroid of the darkest quarter of the eye's
pixels inside its six dlib eye points. This masker reads our iris position along the eye the same way,
inside the six matching points of our eye contour (outer corner, two upper-lid points, inner corner, two
lower-lid points), after the landed matched-filter fit; an eye without contrast keeps the fit. It is
``tools/seeded_masker.py`` with that one change, so paired runs compare it with the landed model under
the same appearance draws (models/README.md, "Tried and not landed (2026-12-06, thirteenth session)"):

    cd ../shared/eval && ./maskeval.sh run --data ../data --only videos \\
        --masker 'cd REPO && .venv/bin/python tools/dark_region_iris_masker.py --seed 3 {in} {out}'
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models.perception.pipeline as perception_pipeline  # noqa: E402
from models.perception import roi as roi_ops  # noqa: E402
from models.perception.iris_fit import (  # noqa: E402
    _LUMA,
    RING_INNER,
    RING_OUTER,
    _to_crop,
    fit_irises,
    opening_mask,
)
from tools.seeded_masker import main  # noqa: E402

EYE_PX = 60.0  # crop pixels per eye width, as the eval tool rescales its eye crops
CROP_WIDTHS = 1.5  # crop side in eye widths
RES = int(EYE_PX * CROP_WIDTHS)
DARK_FRACTION = 0.25  # the darkest quarter of the opening's pixels
MIN_CONTRAST = 8.0  # grey levels between the 10th and 90th percentile, else the fit stays
BLUR_PX = 2.0
# the raw contour's 16-point ring: 0 outer corner, 1-7 lower lid and 9-15 upper lid, both outer to inner
SIX_POINTS = (0, 11, 13, 8, 5, 3)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    reach = int(3 * sigma) + 1
    t = torch.arange(-reach, reach + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.conv2d(F.pad(x[:, None], (reach, reach, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, reach, reach), mode="replicate"), k.view(1, 1, -1, 1))
    return y[:, 0]


def dark_region_along_eye(frame: torch.Tensor, rings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n,) position of the darkest region along each eye (0 outer corner .. 1 inner corner), and
    whether it could be read (enough contrast and pixels)."""
    outer, inner = rings[:, RING_OUTER, :2], rings[:, RING_INNER, :2]
    axis = inner - outer
    rotation = torch.atan2(axis[:, 1], axis[:, 0])
    centre = 0.5 * (outer + inner)
    rois = torch.stack([centre[:, 0], centre[:, 1], axis.norm(dim=-1) * CROP_WIDTHS, rotation], dim=-1)
    luma = torch.tensor(_LUMA, device=frame.device, dtype=frame.dtype).reshape(1, 3, 1, 1)
    grey = _blur((roi_ops.crop(frame, rois, RES) * luma).sum(dim=1), BLUR_PX)
    inside = opening_mask(_to_crop(rings[:, list(SIX_POINTS), :2], rois, RES), RES)
    inside = -F.max_pool2d(-inside[:, None], 3, 1, 1)[:, 0]  # eroded by one pixel
    values = torch.where(inside > 0, grey, torch.full_like(grey, float("nan"))).flatten(1)
    levels = torch.tensor([0.10, DARK_FRACTION, 0.90], dtype=values.dtype, device=values.device)
    p10, threshold, p90 = torch.nanquantile(values, levels, dim=1)
    weight = torch.where(
        (inside > 0) & (grey <= threshold[:, None, None]),
        threshold[:, None, None] - grey + 1e-3,
        torch.zeros_like(grey),
    )
    xs = torch.arange(RES, dtype=grey.dtype, device=grey.device) + 0.5
    cx = (weight.sum(dim=1) * xs).sum(dim=-1) / weight.sum(dim=(1, 2)).clamp_min(1e-9)
    along = (cx / RES - 0.5) * CROP_WIDTHS + 0.5
    readable = (p90 - p10 >= MIN_CONTRAST) & (inside.sum(dim=(1, 2)) >= 12) & torch.isfinite(along)
    return along, readable


def fit_irises_dark_region(frame: torch.Tensor, rings: torch.Tensor, iris: torch.Tensor) -> torch.Tensor:
    """The landed fit, then each readable eye's iris moved along the eye to its darkest region."""
    if iris.shape[0] == 0:
        return iris
    fitted = fit_irises(frame, rings, iris)
    along, readable = dark_region_along_eye(frame, rings)
    outer = rings[:, RING_OUTER, :2]
    axis = rings[:, RING_INNER, :2] - outer
    now = ((fitted[:, 0, :2] - outer) * axis).sum(dim=-1) / (axis * axis).sum(dim=-1)
    shift = torch.where(readable, along - now, torch.zeros_like(along))
    moved = fitted.clone()
    moved[..., :2] = fitted[..., :2] + (shift[:, None] * axis)[:, None, :]
    return moved


if __name__ == "__main__":
    perception_pipeline.fit_irises = fit_irises_dark_region
    raise SystemExit(main())
